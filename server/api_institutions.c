/*
 * api_institutions.c - the alliance's members as a REST resource (issue
 * 18): everyone signed in reads them; an admin of the whole alliance adds
 * or updates one, as departments are managed. The core institution is the
 * configured hospital (hospital_id, hospital_name, hospital_org_code,
 * hospital_level) and is written at start, not here.
 *
 * Control loop thread only.
 */
#include "http_internal.h"
#include "telemed/common.h"
#include "telemed/store.h"

#include <string.h>

static json_t *institution_json(const tm_institution *in)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", in->id, "name", in->name, "kind", in->kind);
    json_object_set_new(o, "org_code", in->org_code[0] ? json_string(in->org_code) : json_null());
    json_object_set_new(o, "level", in->level[0] ? json_string(in->level) : json_null());
    return o;
}

/* POST /api/v1/institutions {id, name, kind (hospital | clinic), org_code?,
 * level?}: a member of the alliance, new or updated. */
static void put_institution(http_req *r)
{
    bool bad = false;
    const char *id = tm__body_str(r->body, "id", 63, true, &bad);
    const char *name = tm__body_str(r->body, "name", 255, true, &bad);
    const char *kind = tm__body_str(r->body, "kind", 15, true, &bad);
    const char *org_code = tm__body_str(r->body, "org_code", 63, false, &bad);
    const char *level = tm__body_str(r->body, "level", 31, false, &bad);
    if (bad || !tm__id_ok(id) || (strcmp(kind, "hospital") != 0 && strcmp(kind, "clinic") != 0)) {
        tm__respond_err(r->p, TM_EINVAL,
                        "institution needs id ([A-Za-z0-9._-]{1,63}), name and kind (hospital or "
                        "clinic); org_code and level optional");
        return;
    }
    if (strcmp(id, r->app->cfg.hospital_id) == 0) {
        tm__respond_err(r->p, TM_ECONFLICT,
                        "the core institution is the configured hospital (hospital_* options)");
        return;
    }
    tm_institution in = {0};
    g_strlcpy(in.id, id, sizeof(in.id));
    g_strlcpy(in.name, name, sizeof(in.name));
    g_strlcpy(in.kind, kind, sizeof(in.kind));
    g_strlcpy(in.org_code, org_code ? org_code : "", sizeof(in.org_code));
    g_strlcpy(in.level, level ? level : "", sizeof(in.level));
    int rc = tm_store_institution_put(r->app->store, &in);
    if (rc < 0) {
        tm__respond_err(r->p, rc, NULL);
        return;
    }
    tm__audit(r, "institution.put", id, "ok");
    tm__respond_json(r->p, 201, institution_json(&in));
}

void tm__api_institutions(http_req *r)
{
    tm_store *st = r->app->store;
    if (r->p->method == LWSHUMETH_GET && r->nseg == 1) {
        tm__respond_json(r->p, 200,
                         json_pack("{s:o}", "institutions", tm_store_institution_list(st)));
        return;
    }
    if (r->p->method == LWSHUMETH_GET && r->nseg == 2) {
        tm_institution in;
        int rc = tm_store_institution_get(st, r->seg[1], &in);
        if (rc < 0) {
            tm__respond_err(r->p, rc, rc == TM_ENOTFOUND ? "no such institution" : NULL);
            return;
        }
        json_t *o = institution_json(&in);
        json_object_set_new(o, "departments", tm_store_institution_depts(st, in.id));
        tm__respond_json(r->p, 200, o);
        return;
    }
    /* The alliance's members are the alliance's business, not one member's. */
    if (!tm__need(r, tm__is_admin(r) && !r->who.institution[0]))
        return;
    if (r->p->method == LWSHUMETH_POST && r->nseg == 1) {
        put_institution(r);
        return;
    }
    tm__respond_err(r->p, TM_ENOTFOUND, "no such route");
}
