/*
 * test_position_text.c - the hand-written queue.position push is valid JSON
 * with the documented fields, whatever the visit id holds: jansson parses
 * every output back.
 */
#include "position_text.h"

#include <jansson.h>

#include "tm_test.h"

static json_t *format_and_parse(const char *visit_id, int position, int64_t est_s)
{
    tm__position_dept d;
    tm__position_dept_init(&d, 17, 3, 0);
    char out[512];
    size_t n = tm__position_format(&d, visit_id, position, est_s, out, sizeof(out));
    CHECK(n > 0);
    json_error_t err;
    json_t *m = json_loadb(out, n, JSON_REJECT_DUPLICATES, &err);
    if (!m)
        fprintf(stderr, "not JSON (%s): %.*s\n", err.text, (int)n, out);
    CHECK(m != NULL);
    return m;
}

static void test_fields_as_documented(void)
{
    json_t *m = format_and_parse("v-0123abcd", 4, 600);
    CHECK_STR(json_string_value(json_object_get(m, "type")), "queue.position");
    CHECK_STR(json_string_value(json_object_get(m, "visit_id")), "v-0123abcd");
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "position")), 4);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "waiting")), 17);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "estimated_wait_s")), 600);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "doctors_on_duty")), 3);
    CHECK(json_is_null(json_object_get(m, "next_shift_at")));
    CHECK_EQ_INT(json_object_size(m), 7);
    json_decref(m);
}

static void test_unknown_estimate_is_null(void)
{
    json_t *m = format_and_parse("v1", 1, -1);
    CHECK(json_is_null(json_object_get(m, "estimated_wait_s")));
    json_decref(m);
}

static void test_every_string_escaped(void)
{
    const char *ids[] = {"a\"b",     "back\\slash",  "tab\tnew\nline",
                         "\x01\x1f", "\"}{\"x\":\"", "\xe5\x8c\xbb\xe9\x99\xa2"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        json_t *m = format_and_parse(ids[i], 2, 60);
        CHECK_STR(json_string_value(json_object_get(m, "visit_id")), ids[i]);
        CHECK_EQ_INT(json_object_size(m), 7);
        json_decref(m);
    }
}

static void test_next_shift_is_a_time(void)
{
    tm__position_dept d;
    tm__position_dept_init(&d, 2, 0, 1795618649560);
    char out[512];
    size_t n = tm__position_format(&d, "v2", 2, -1, out, sizeof(out));
    json_t *m = json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL);
    CHECK(m != NULL);
    CHECK_STR(json_string_value(json_object_get(m, "next_shift_at")), "2026-11-25T14:57:29.560Z");
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "doctors_on_duty")), 0);
    json_decref(m);
}

static void test_extremes(void)
{
    json_t *m = format_and_parse("v", 2147483647, INT64_MAX);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "position")), 2147483647);
    CHECK(json_integer_value(json_object_get(m, "estimated_wait_s")) == INT64_MAX);
    json_decref(m);
}

static void test_refuses_what_it_cannot_write(void)
{
    tm__position_dept d;
    tm__position_dept_init(&d, 1, 1, 0);
    char out[64];
    CHECK_EQ_INT(tm__position_format(&d, "a-visit-id-that-is-long", 1, 1, out, sizeof(out)), 0);
    char big[512];
    CHECK_EQ_INT(tm__position_format(&d, "bad\xff\xfeutf8", 1, 1, big, sizeof(big)), 0);
}

int main(void)
{
    RUN(test_fields_as_documented);
    RUN(test_unknown_estimate_is_null);
    RUN(test_next_shift_is_a_time);
    RUN(test_every_string_escaped);
    RUN(test_extremes);
    RUN(test_refuses_what_it_cannot_write);
    TEST_DONE();
}
