/*
 * figures.h - the doctor, department and institution figures (issue 18):
 * the three axes hospitals judge online work by, per day, week or month in
 * the hospital's time zone.
 *
 *   workload      visits accepted, follow-up visits among them, consultations
 *                 given (opinions signed) and requested, referrals made,
 *                 transfers handed over;
 *   response      check-in -> accept and consultation request -> scheduled,
 *                 each as count, p50 and p90 (nearest rank) in ms;
 *   satisfaction  ratings of the visits accepted in the period: count, mean
 *                 (two decimals), how many came with a comment;
 *   no-shows      appointments whose slot in the period passed without the
 *                 patient.
 *
 * Computed from the store in one pass over a range of at most
 * TM_FIGURES_MAX_DAYS days (store.h, tm_store_figure_facts), on the control
 * loop: the bound and the indexed reads keep one request short.
 */
#ifndef TELEMED_FIGURES_H
#define TELEMED_FIGURES_H

#include "telemed/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TM_FIGURES_MAX_DAYS 92
/* The most rating comments one answer lists. */
#define TM_FIGURES_MAX_COMMENTS 50

typedef enum {
    TM_FIGURES_BY_DOCTOR,
    TM_FIGURES_BY_DEPARTMENT,
    TM_FIGURES_BY_INSTITUTION
} tm_figures_by;
typedef enum { TM_FIGURES_DAY, TM_FIGURES_WEEK, TM_FIGURES_MONTH } tm_figures_period;

typedef struct tm_figures_query {
    tm_figures_by by;
    tm_figures_period period;
    int64_t from_ms, to_ms; /* [from, to), at most TM_FIGURES_MAX_DAYS days */
    const char *time_zone;  /* IANA name: where days, weeks and months start */
    const char *core_id;    /* the core institution: the hospital itself */
    const char *core_name;
    const char *institution; /* only this institution's facts; NULL or "" all */
} tm_figures_query;

/* "doctor" | "department" | "institution", and "day" | "week" | "month".
 * 0 or TM_EINVAL. */
int tm_figures_by_parse(const char *text, tm_figures_by *out);
int tm_figures_period_parse(const char *text, tm_figures_period *out);
/* Whether the system knows the time zone name. */
bool tm_figures_time_zone_valid(const char *name);
/* A point in time given as epoch ms, RFC 3339, or a date YYYY-MM-DD (its
 * midnight in time_zone), into *out. 0 or TM_EINVAL. */
int tm_figures_time_parse(const char *text, const char *time_zone, int64_t *out);
/* The midnight in time_zone that starts the day holding at_ms (at_ms itself
 * when the zone is unknown). */
int64_t tm_figures_day_start(const char *time_zone, int64_t at_ms);

/* {by, period, time_zone, from, to, rows: [{period, period_start, id, name,
 * department_id?, department_name?, institution_id?, workload {...},
 * response {...}, satisfaction {...}, no_shows}], comments: [{visit_id,
 * rated_at, doctor_id, doctor_name, department_id, department_name, score,
 * comment}]} rows by period then id, a row only for an owner with something
 * to count in the period; the comments of the visits accepted in the range,
 * newest first, at most TM_FIGURES_MAX_COMMENTS. NULL with *rc
 * TM_EINVAL (range empty or over TM_FIGURES_MAX_DAYS days, unknown zone)
 * or the store's failure. New reference. */
json_t *tm_figures_compute(tm_store *s, const tm_figures_query *q, int *rc);
/* The rows of tm_figures_compute's answer as CSV (RFC 4180, a header line,
 * empty fields for no value). A new string the caller frees with g_free(). */
char *tm_figures_csv(const json_t *figures);

#endif
