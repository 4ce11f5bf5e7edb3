/*
 * api_figures.c - GET /api/v1/figures: the doctor, department and
 * institution figures (figures.h) for supervisors and admins, as JSON or as
 * CSV (Accept: text/csv, or format=csv). Every read is audited with its
 * query; a bad argument is refused with what is wrong before the store is
 * read.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/figures.h"

#include <string.h>

/* from/to as the caller gave them, or the last seven days to now. */
static bool figures_range(http_req *r, const char *tz, int64_t *from, int64_t *to)
{
    char buf[64];
    const char *t = tm__arg(r, "to", buf, sizeof(buf));
    *to = tm_now_ms();
    if (t && tm_figures_time_parse(t, tz, to) < 0)
        return false;
    const char *f = tm__arg(r, "from", buf, sizeof(buf));
    *from = tm_figures_day_start(tz, *to - 1) - 6 * 24 * 3600 * 1000LL;
    return !f || tm_figures_time_parse(f, tz, from) == 0;
}

static bool wants_csv(http_req *r)
{
    char buf[16];
    const char *format = tm__arg(r, "format", buf, sizeof(buf));
    if (format)
        return strcmp(format, "csv") == 0;
    return strstr(r->p->accept, "text/csv") != NULL;
}

void tm__api_figures(http_req *r)
{
    if (r->p->method != LWSHUMETH_GET || r->nseg != 1) {
        tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
        return;
    }
    if (!tm__is_staff(r)) {
        tm__audit(r, "figures.read", "*", "denied");
        tm__respond_err(r->p, TM_EPERM, "figures are for supervisors and admins");
        return;
    }
    const tm_config *cfg = &r->app->cfg;
    char by_buf[16], period_buf[16], format_buf[16], inst_buf[80];
    const char *by = tm__arg(r, "by", by_buf, sizeof(by_buf));
    const char *inst = tm__arg(r, "institution", inst_buf, sizeof(inst_buf));
    /* A supervisor or admin scoped to an institution sees its figures only. */
    if (r->who.institution[0]) {
        if (inst && strcmp(inst, r->who.institution) != 0) {
            tm__audit(r, "figures.read", inst, "denied");
            tm__respond_err(r->p, TM_EPERM, "the figures of another institution");
            return;
        }
        inst = r->who.institution;
    }
    const char *period = tm__arg(r, "period", period_buf, sizeof(period_buf));
    const char *format = tm__arg(r, "format", format_buf, sizeof(format_buf));
    tm_figures_query q = {
        .time_zone = cfg->figures_time_zone,
        .core_id = cfg->hospital_id,
        .core_name = cfg->hospital_name,
        .institution = inst,
    };
    const char *bad = NULL;
    if (tm_figures_by_parse(by ? by : "doctor", &q.by) < 0)
        bad = "by must be doctor, department or institution";
    else if (tm_figures_period_parse(period ? period : "day", &q.period) < 0)
        bad = "period must be day, week or month";
    else if (inst && !tm__id_ok(inst))
        bad = "institution must be an institution id";
    else if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
        bad = "format must be json or csv";
    else if (!figures_range(r, q.time_zone, &q.from_ms, &q.to_ms))
        bad = "from/to must be YYYY-MM-DD, RFC 3339 or epoch ms";
    else if (q.to_ms <= q.from_ms)
        bad = "from must be before to";
    else if (q.to_ms - q.from_ms > TM_FIGURES_MAX_DAYS * 24 * 3600 * 1000LL)
        bad = "the range is longer than 92 days";
    if (bad) {
        tm__audit(r, "figures.read", "*", "invalid");
        tm__respond_err(r->p, TM_EINVAL, bad);
        return;
    }
    int rc = 0;
    json_t *figures = tm_figures_compute(r->app->store, &q, &rc);
    tm__audit_list(r, "figures.read", NULL);
    if (!figures) {
        tm__respond_err(r->p, rc, NULL);
        return;
    }
    if (!wants_csv(r)) {
        tm__respond_json(r->p, 200, figures);
        return;
    }
    char *csv = tm_figures_csv(figures);
    json_decref(figures);
    GString *body = g_string_new(csv);
    g_free(csv);
    tm__respond_text(r->p, 200, "text/csv; charset=utf-8", body);
}
