/*
 * test_feed_tianjin.c - the tianjin profile's pure parts and its store side:
 * SM3/SM4 and the header signature against the platform SDK's vectors, the
 * field mapping and its checks, and the docs' copy of the mapping table.
 * (Staging a day, once per business id, is in the store suite.)
 *
 * The vectors (V1-V9) were produced with the platform's Java SDK, as
 * published in qb-ivf/qiubei-health docs/tianjin_gateway_protocol.md.
 */
#include "tm_test.h"

#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/feed_tianjin.h"
#include "telemed/sm_crypto.h"
#include "telemed/store.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

static const char SECRET[] = "bbf1dd188b8b4629853f06f118d11e4a";
static const char IV[] = "abcd0863ef9087ced675985321bedf67";

static char *encrypt(const char *plain)
{
    uint8_t key[16], iv[16];
    CHECK_EQ_INT(tm_sm4_key_parse(SECRET, key), 0);
    CHECK_EQ_INT(tm_sm4_key_parse(IV, iv), 0);
    char *hex = NULL;
    size_t len = 0;
    CHECK_EQ_INT(
        tm_sm4_cbc_encrypt_hex(key, iv, TM_SM4_PAD_ISO7816, plain, strlen(plain), &hex, &len), 0);
    CHECK_EQ_INT(len, strlen(hex));
    char *back = NULL;
    size_t back_len = 0;
    CHECK_EQ_INT(tm_sm4_cbc_decrypt_hex(key, iv, TM_SM4_PAD_ISO7816, hex, len, &back, &back_len),
                 0);
    CHECK_STR(back, plain);
    g_free(back);
    return hex;
}

static void test_sdk_vectors(void)
{
    char h[65];
    CHECK_EQ_INT(tm_sm3_hex("abc", 3, h), 0);
    CHECK_STR(h, "66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0");

    char *c = encrypt("[1]");
    CHECK_STR(c, "49a9a1cb6403aa7ca5d7be3287b0dc6b");
    CHECK_EQ_INT(tm_sm3_hex(c, strlen(c), h), 0);
    CHECK_STR(h, "F7DCA75A3D6083A0E4FD0BA219FFE8AC10E35AE45FD8A91F90A9CDAB5A0ED056");
    g_free(c);

    c = encrypt("[{\"organID\":\"12345678901234567X\",\"unitID\":\"U0001\",\"organName\":"
                "\"\xe5\xa4\xa9\xe6\xb4\xa5\xe9\x80\x91\xe8\xb4\x9d\xe4\xba\x92\xe8\x81\x94\xe7\xbd"
                "\x91\xe5\x8c\xbb\xe9\x99\xa2\"}]");
    CHECK_STR(c, "bda12c065d493fcb45851a847d58648fdcb5dc17fc8c2f895ad2e2394bfdc309c977b99228aa51fa"
                 "2aeabe25d28af20bf7658673dc1f8a2c9e7ab7de50311bdfba0d8a0c84ad3dd9a41c1635ec80d121"
                 "fa0b5ef611139a6d23c4644480fb68a6");
    g_free(c);
    c = encrypt("0123456789abcdef"); /* a whole block gets a block of padding */
    CHECK_STR(c, "a9f4a4c761cf5110a2adbd8e1cdb79b025db47d12e40bf0803278053400e9f40");
    g_free(c);
    c = encrypt("0123456789abcdef0123456789abcdef");
    CHECK_STR(c, "a9f4a4c761cf5110a2adbd8e1cdb79b0d0cdb4c80a112f917302699a23c67f4c74e73fb22408c9db"
                 "e2acab3ed307ecb8");
    g_free(c);

    GString *s = g_string_new(NULL);
    CHECK_EQ_INT(
        tm__tianjin_sign("his.provinceDataUploadService", "uploadDrugCatalogue",
                         "ngari5fd5ad2196834aa7", "8d708068-0a36-47d3-8ff4-011fdace7d63",
                         "1718185594026",
                         "F7DCA75A3D6083A0E4FD0BA219FFE8AC10E35AE45FD8A91F90A9CDAB5A0ED056", s, h),
        0);
    CHECK_STR(s->str, "x-ca-key:ngari5fd5ad2196834aa7&x-ca-nonce:8d708068-0a36-47d3-8ff4-"
                      "011fdace7d63&x-ca-timestamp:1718185594026&x-content-md5:F7DCA75A3D6083A0E4"
                      "FD0BA219FFE8AC10E35AE45FD8A91F90A9CDAB5A0ED056&x-service-id:his."
                      "provinceDataUploadService&x-service-method:uploadDrugCatalogue");
    CHECK_STR(h, "A07C0B67CE2996DF9416A5BE7EB7F4E8EAF40F31D46423A1FA9ECEA188C7627A");
    g_string_free(s, TRUE);
}

static void test_sm4_rejects(void)
{
    uint8_t key[16], iv[16];
    CHECK_EQ_INT(tm_sm4_key_parse("abc", key), TM_EINVAL);
    CHECK_EQ_INT(tm_sm4_key_parse("zz"
                                  "f1dd188b8b4629853f06f118d11e4a",
                                  key),
                 TM_EINVAL);
    CHECK_EQ_INT(tm_sm4_key_parse(SECRET, key), 0);
    CHECK_EQ_INT(tm_sm4_key_parse(IV, iv), 0);
    char *plain = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tm_sm4_cbc_decrypt_hex(key, iv, TM_SM4_PAD_ISO7816, "abcd", 4, &plain, &n),
                 TM_EINVAL);
    /* PKCS#7 ciphertext read as ISO 7816-4: the padding does not check out. */
    char *hex = NULL;
    CHECK_EQ_INT(tm_sm4_cbc_encrypt_hex(key, iv, TM_SM4_PAD_PKCS7, "[1]", 3, &hex, &n), 0);
    CHECK_EQ_INT(tm_sm4_cbc_decrypt_hex(key, iv, TM_SM4_PAD_ISO7816, hex, n, &plain, &n),
                 TM_EINVAL);
    CHECK(plain == NULL);
    g_free(hex);
}

static tm_config cfg(void)
{
    tm_config c;
    memset(&c, 0, sizeof(c));
    c.tianjin_organ_id = "12120000MB1234567X";
    c.tianjin_business_type = "4";
    c.tianjin_utc_offset_min = 480;
    return c;
}

static const int64_t T0 = 1764072000000LL; /* 2025-11-25T12:00:00Z = 20:00 in Tianjin */

static void test_time_and_mapping(void)
{
    char when[20];
    tm__tianjin_time(T0, 480, when);
    CHECK_STR(when, "2025-11-25 20:00:00");
    tm__tianjin_time(T0 + 5 * 3600 * 1000LL, 480, when);
    CHECK_STR(when, "2025-11-26 01:00:00");

    tm_config c = cfg();
    const char answered[] =
        "{\"visit_id\":\"v-1\",\"patient_id\":\"p\",\"dept_id\":\"cardio\",\"doctor_id\":\"doc-1\","
        "\"checked_in_at\":1764072000000,\"accepted_at\":1764072060000,\"ended_at\":1764072660000,"
        "\"end_reason\":\"completed\",\"diagnosis_code\":\"I10\",\"doctor_cert_id\":\"D1\","
        "\"patient_cert_type\":\"1\",\"patient_cert_id\":\"P1\",\"dept_code\":\"A03\"}";
    json_t *rec = NULL;
    char *why = NULL;
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", answered, T0, &rec, &why), 0);
    CHECK_STR(json_string_value(json_object_get(rec, "organID")), "12120000MB1234567X");
    CHECK_STR(json_string_value(json_object_get(rec, "bussID")), "v-1");
    CHECK_STR(json_string_value(json_object_get(rec, "returnVisitType")), "3");
    CHECK_STR(json_string_value(json_object_get(rec, "startDate")), "2025-11-25 20:01:00");
    CHECK_STR(json_string_value(json_object_get(rec, "answerFlag")), "1");
    CHECK(json_object_get(rec, "refuseTime") == NULL);
    CHECK(json_object_get(rec, "organName") == NULL); /* not configured: left out */
    json_decref(rec);

    /* A visit of another alliance member goes under that member's code and name. */
    char *member = g_strdup_printf("{\"member_org_code\":\"12110000MB0000001X\","
                                   "\"member_name\":\"County West\",%s",
                                   answered + 1);
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", member, T0, &rec, &why), 0);
    CHECK_STR(json_string_value(json_object_get(rec, "organID")), "12110000MB0000001X");
    CHECK_STR(json_string_value(json_object_get(rec, "organName")), "County West");
    json_decref(rec);
    g_free(member);

    /* A visit nobody answered: refusal fields, no doctor or diagnosis needed. */
    const char unanswered[] =
        "{\"visit_id\":\"v-2\",\"dept_id\":\"cardio\",\"checked_in_at\":1764072000000,"
        "\"ended_at\":1764072300000,\"end_reason\":\"patient_left\",\"patient_cert_type\":\"1\","
        "\"patient_cert_id\":\"P1\",\"dept_code\":\"A03\"}";
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", unanswered, T0, &rec, &why), 0);
    CHECK_STR(json_string_value(json_object_get(rec, "answerFlag")), "0");
    CHECK_STR(json_string_value(json_object_get(rec, "refuseReason")), "patient_left");
    CHECK_STR(json_string_value(json_object_get(rec, "refuseTime")), "2025-11-25 20:05:00");
    CHECK(json_object_get(rec, "mainDiagnoseCode") == NULL);
    json_decref(rec);

    /* Missing and invalid fields are named. */
    char *bad = g_strdup(answered);
    char *p = strstr(bad, "\"I10\"");
    memcpy(p, "\"i1\" ", 5);
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", bad, T0, &rec, &why), TM_EINVAL);
    CHECK(rec == NULL);
    CHECK(strstr(why, "invalid field mainDiagnoseCode") != NULL);
    g_free(why);
    g_free(bad);
    c.tianjin_organ_id = NULL;
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", answered, T0, &rec, &why), TM_EINVAL);
    CHECK(strstr(why, "missing field organID") != NULL);
    g_free(why);
    c = cfg();
    CHECK_EQ_INT(
        tm__tianjin_map(&c, "rating",
                        "{\"visit_id\":\"v-1\",\"score\":9,\"rated_at\":1764072000000,"
                        "\"doctor_id\":\"d\",\"doctor_cert_id\":\"D1\",\"dept_code\":\"A\"}",
                        T0, &rec, &why),
        TM_EINVAL);
    CHECK(strstr(why, "invalid field satisfaction") != NULL);
    g_free(why);
    /* Every failing field is named, so one fix covers them all. */
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit",
                                 "{\"visit_id\":\"v-3\",\"checked_in_at\":1,\"ended_at\":2,"
                                 "\"end_reason\":\"no_show\",\"dept_code\":\"A\"}",
                                 T0, &rec, &why),
                 TM_EINVAL);
    CHECK_STR(why, "missing field patientCertType (from patient_cert_type), missing field "
                   "patientCertID (from patient_cert_id)");
    g_free(why);
    CHECK_EQ_INT(tm__tianjin_map(&c, "visit", "not json", T0, &rec, &why), TM_EINVAL);
    g_free(why);
}

#ifdef TM_SRC_DIR
static char *read_doc(const char *name)
{
    char *path = g_build_filename(TM_SRC_DIR, "docs", name, NULL);
    char *text = NULL;
    CHECK(g_file_get_contents(path, &text, NULL, NULL));
    g_free(path);
    return text;
}

/* docs/regulator-feed.md's mapping table is the code's, row for row. */
static void test_doc_mapping(void)
{
    char *doc = read_doc("regulator-feed.md");
    char **lines = g_strsplit(doc, "\n", -1);
    size_t row = 0;
    char buf[256];
    for (size_t i = 0; lines[i]; i++) {
        if (!g_str_has_prefix(lines[i], "| visit | ") && !g_str_has_prefix(lines[i], "| rating | "))
            continue;
        GString *plain = g_string_new(NULL);
        for (const char *c = lines[i] + 2; *c; c++)
            if (*c != '`')
                g_string_append_c(plain, *c);
        g_string_truncate(plain, plain->len - 2); /* " |" */
        const char *code = tm__tianjin_mapping_row(row++, buf, sizeof(buf));
        if (!code || strcmp(code, plain->str) != 0)
            fprintf(stderr, "doc row \"%s\" != code row \"%s\"\n", plain->str,
                    code ? code : "(none)");
        CHECK(code && strcmp(code, plain->str) == 0);
        g_string_free(plain, TRUE);
    }
    CHECK(tm__tianjin_mapping_row(row, buf, sizeof(buf)) == NULL);
    CHECK(row > 20);
    g_strfreev(lines);
    g_free(doc);
}

/* The feed document names exactly protocol.md's end reasons. */
static void test_doc_end_reasons(void)
{
    char *proto = read_doc("protocol.md");
    char *feed = read_doc("regulator-feed.md");
    const char *table = strstr(proto, "End reasons (`end_reason`");
    CHECK(table != NULL);
    const char *row_start = strstr(feed, "| `end_reason` |");
    CHECK(row_start != NULL);
    char *row = g_strndup(row_start, (size_t)(strchr(row_start, '\n') - row_start));
    char **lines = g_strsplit(table, "\n", 40);
    int reasons = 0;
    for (size_t i = 0; lines[i] && !(reasons && lines[i][0] == '\0'); i++) {
        if (!g_str_has_prefix(lines[i], "| `"))
            continue;
        char *name = g_strndup(lines[i] + 2, (size_t)(strchr(lines[i] + 3, '`') - lines[i] - 1));
        if (!strstr(row, name))
            fprintf(stderr, "regulator-feed.md's end_reason row lacks %s\n", name);
        CHECK(strstr(row, name) != NULL);
        g_free(name);
        reasons++;
    }
    CHECK(reasons >= 8);
    CHECK(strstr(feed, "referred_offline") == NULL);
    CHECK(strstr(row, "`timeout`") == NULL);
    g_strfreev(lines);
    g_free(row);
    g_free(proto);
    g_free(feed);
}
#endif

int main(void)
{
    test_sdk_vectors();
    test_sm4_rejects();
    test_time_and_mapping();
#ifdef TM_SRC_DIR
    test_doc_mapping();
    test_doc_end_reasons();
#endif
    printf("test_feed_tianjin: %d checks passed\n", tm_test_checks);
    return 0;
}
