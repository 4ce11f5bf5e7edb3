/*
 * consent.c - informed consent (细则 Art. 6): the texts a patient accepts
 * before checking in (internet diagnosis and recording) and the notice a
 * guest or interpreter accepts before joining, each in zh-CN and English
 * under one version; the consent.get request; the check of the consent
 * a checkin carries; and consent.accept, by which a guest or interpreter
 * accepts their notice in the visit before any media.
 *
 * Control loop. The texts are read once at start: the hospital's files in
 * consent_dir where present, the built-in texts otherwise. A patient who
 * refuses recording is refused check-in while the hospital records every
 * visit: the page then offers an in-person visit or the hospital's phone.
 */
#include "signaling_internal.h"
#include "telemed/log.h"

#include <string.h>

/* The longest consent text file read, in bytes. */
#define MAX_TEXT_BYTES (64 * 1024)

static const char *const kinds[] = {"patient", "guest"};
static const char *const langs[] = {"zh-CN", "en"};

/* Built-in texts, used where the hospital has not put its own. */
static const char *const builtin[2][2] = {
    {
        "互联网诊疗知情同意书\n"
        "1. 本次为视频复诊：医生只能为已在实体医院确诊的常见病、慢性病提供复诊；"
        "首诊、急危重症请到医院就诊或拨打 120。\n"
        "2. 医生认为不适合在线继续时，会终止在线诊疗并告诉您去哪里线下就诊、为什么。\n"
        "3. 为全程留痕，视频问诊会全程录音录像，录像加密保存在医院，至少保存 3 年；"
        "病历至少保存 15 年，按规定向卫生健康监管平台报送（不含录像）。\n"
        "4. 您可以拒绝录像，但视频问诊就无法进行；您可以到医院当面就诊或致电医院。\n"
        "点击“同意”即表示您已阅读并同意以上内容。",
        "Informed consent to internet diagnosis\n"
        "1. This is a video follow-up visit: doctors see online only common and chronic "
        "conditions already diagnosed in person. For a first visit or an emergency, come to "
        "the hospital or call 120.\n"
        "2. If the doctor decides the visit cannot go on online, they end it and tell you "
        "where to be seen in person and why.\n"
        "3. The whole video visit is recorded, as the rules require; the recording is kept "
        "encrypted at the hospital for at least 3 years, the medical record for at least 15 "
        "years, and the visit is reported to the health regulator (without the recording).\n"
        "4. You may refuse recording, but then the video visit cannot take place: you can be "
        "seen in person or call the hospital.\n"
        "By choosing Agree you confirm that you have read and accept the above.",
    },
    {
        "参与视频问诊须知\n"
        "您将以访客或翻译身份加入一次视频问诊。问诊会全程录音录像，录像加密保存在医院；"
        "请对问诊内容保密，不要自行录制。点击“同意”即表示您已阅读并同意。",
        "Notice for guests and interpreters\n"
        "You are joining a video visit as a guest or interpreter. The whole visit is "
        "recorded and the recording is kept encrypted at the hospital; keep what you hear "
        "confidential and do not record it yourself. By choosing Agree you accept this.",
    },
};

struct tm__consent_texts {
    char *text[2][2]; /* [kind][lang] */
};

void tm__consent_free(tm__consent_texts *c)
{
    if (!c)
        return;
    for (size_t k = 0; k < 2; k++)
        for (size_t l = 0; l < 2; l++)
            g_free(c->text[k][l]);
    g_free(c);
}

/* The hospital's text for kind and lang from dir, or the built-in one when
 * the file is absent. NULL with *err when a file is there but unusable. */
static char *load_text(const char *dir, size_t k, size_t l, char **err)
{
    if (!dir)
        return g_strdup(builtin[k][l]);
    char *name = g_strdup_printf("%s.%s.txt", kinds[k], langs[l]);
    char *path = g_build_filename(dir, name, NULL);
    char *text = NULL;
    gsize len = 0;
    GError *gerr = NULL;
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
        text = g_strdup(builtin[k][l]);
    else if (!g_file_get_contents(path, &text, &len, &gerr))
        *err = g_strdup_printf("consent text %s: %s", path, gerr->message);
    else if (len == 0 || len > MAX_TEXT_BYTES || !g_utf8_validate(text, (gssize)len, NULL) ||
             memchr(text, '\0', len)) {
        *err = g_strdup_printf("consent text %s: must be UTF-8 text of 1 to %d bytes", path,
                               MAX_TEXT_BYTES);
        g_clear_pointer(&text, g_free);
    }
    g_clear_error(&gerr);
    g_free(path);
    g_free(name);
    return text;
}

tm__consent_texts *tm__consent_load(const tm_config *cfg, char **err)
{
    tm__consent_texts *c = g_new0(tm__consent_texts, 1);
    for (size_t k = 0; k < 2; k++) {
        for (size_t l = 0; l < 2; l++) {
            c->text[k][l] = load_text(cfg->consent_dir, k, l, err);
            if (!c->text[k][l]) {
                tm__consent_free(c);
                return NULL;
            }
        }
    }
    tm_info("consent.loaded", "version=%s dir=%s", cfg->consent_version,
            cfg->consent_dir ? cfg->consent_dir : "-");
    return c;
}

static bool notice_role(tm__visit_role role)
{
    return role == TM_VR_GUEST || role == TM_VR_INTERPRETER;
}

/* The caller as a guest or interpreter in the live visit visit_id, or NULL. */
static party_member *notice_member(request *r, const char *visit_id)
{
    live_visit *v = visit_id ? g_hash_table_lookup(r->sig->visits, visit_id) : NULL;
    party_member *m = v ? tm__party_member(v, r->u) : NULL;
    return m && notice_role(m->role) ? m : NULL;
}

/* consent.get: the current texts of one kind (patient, or guest for guests
 * and interpreters), and what a patient who will not be recorded can do. */
static void handle_consent_get(request *r)
{
    const char *kind = tm__jstr(r->msg, "kind");
    size_t k = 0;
    if (json_object_get(r->msg, "kind") && !kind) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "kind must be patient, guest or interpreter");
        return;
    }
    if (kind && strcmp(kind, "patient") != 0) {
        if (strcmp(kind, "guest") != 0 && strcmp(kind, "interpreter") != 0) {
            tm__reply_err(r->s, r->id, TM_EINVAL, "kind must be patient, guest or interpreter");
            return;
        }
        k = 1;
    }
    const tm_config *cfg = r->sig->cfg;
    const tm__consent_texts *c = r->sig->consent;
    json_t *texts = json_object();
    for (size_t l = 0; l < 2; l++)
        json_object_set_new(texts, langs[l], json_string(c->text[k][l]));
    json_t *data = json_pack("{s:s, s:s, s:b, s:b, s:o}", "version", cfg->consent_version, "kind",
                             kind ? kind : "patient", "required", cfg->consent_required || k == 1,
                             "recording", cfg->recording, "texts", texts);
    json_object_set_new(data, "phone",
                        cfg->hospital_phone ? json_string(cfg->hospital_phone) : json_null());
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    party_member *m = notice_member(r, visit_id);
    if (m)
        json_object_set_new(data, "accepted", json_boolean(m->notice_accepted));
    tm__reply_ok(r->s, r->id, data);
}

bool tm__consent_notice_accepted(live_visit *v, const user *u)
{
    party_member *m = tm__party_member(v, u);
    return !m || !notice_role(m->role) || m->notice_accepted;
}

/* consent.accept {visit_id, version}: the caller, a guest or interpreter in
 * the visit, accepts the current notice of their kind; kept in consents
 * with version, time and session. Accepting again answers the same. */
static void handle_consent_accept(request *r)
{
    const char *visit_id = tm__jstr(r->msg, "visit_id");
    const char *version = tm__jstr(r->msg, "version");
    if (!visit_id || !version) {
        tm__reply_err(r->s, r->id, TM_EINVAL, "visit_id and version are required");
        return;
    }
    party_member *m = notice_member(r, visit_id);
    if (!m) {
        tm__reply_err(r->s, r->id, TM_EPERM,
                      "only a guest or interpreter in the visit has a notice");
        return;
    }
    const tm_config *cfg = r->sig->cfg;
    if (strcmp(version, cfg->consent_version) != 0) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT,
                      "the notice accepted is not the current version: show consent.get's text");
        return;
    }
    const char *kind = tm__visit_role_name(m->role);
    if (!m->notice_accepted) {
        tm_consent c = {.recording = true, .accepted_ms = tm_now_ms()};
        g_strlcpy(c.kind, kind, sizeof(c.kind));
        g_strlcpy(c.role, kind, sizeof(c.role));
        g_strlcpy(c.user_id, m->sub, sizeof(c.user_id));
        g_strlcpy(c.version, version, sizeof(c.version));
        g_strlcpy(c.session_id, r->s->id, sizeof(c.session_id));
        int rc = tm_store_consent_add(r->sig->store, visit_id, &c);
        if (rc < 0) {
            tm__reply_err(r->s, r->id, rc, "the notice could not be recorded");
            return;
        }
        m->notice_accepted = true;
        tm_info("consent.accepted", "visit=%s user=%s kind=%s version=%s", visit_id, r->u->key,
                kind, version);
    }
    tm__reply_ok(r->s, r->id,
                 json_pack("{s:s, s:s, s:s}", "visit_id", visit_id, "kind", kind, "version",
                           cfg->consent_version));
}

bool tm__consent_checkin(request *r, tm_visit *v)
{
    const tm_config *cfg = r->sig->cfg;
    json_t *consent = json_object_get(r->msg, "consent");
    if (!consent) {
        if (!cfg->consent_required)
            return true; /* not asked: the record says so */
        tm__reply_err(r->s, r->id, TM_EPERM,
                      "accept the informed consent first (consent.get gives its text)");
        return false;
    }
    json_t *version = json_object_get(consent, "version");
    json_t *recording = json_object_get(consent, "recording");
    if (!json_is_object(consent) || !json_is_string(version) || !json_is_boolean(recording)) {
        tm__reply_err(r->s, r->id, TM_EINVAL,
                      "consent must be {version: string, recording: boolean}");
        return false;
    }
    if (strcmp(json_string_value(version), cfg->consent_version) != 0) {
        tm__reply_err(r->s, r->id, TM_ECONFLICT,
                      "the consent accepted is not the current version: show consent.get's text");
        return false;
    }
    if (json_is_false(recording) && cfg->recording) {
        /* Every video visit here is recorded (全程留痕): no consent, no video visit. */
        tm__reply_err(r->s, r->id, TM_EPERM,
                      "video visits are recorded: without consent to recording, see a doctor in "
                      "person or call the hospital");
        return false;
    }
    v->recording_consent = json_is_true(recording) ? 1 : -1;
    g_strlcpy(v->consent_version, cfg->consent_version, sizeof(v->consent_version));
    g_strlcpy(v->consent_session, r->s->id, sizeof(v->consent_session));
    return true;
}

const tm__handler tm__consent_handlers[] = {
    {"consent.get", handle_consent_get},
    {"consent.accept", handle_consent_accept},
    {NULL, NULL},
};
