/*
 * store_steps.c - the requests that wait for a visit step the store thread
 * runs (telemed/store_queue.h): check-in (lobby.c), accept and rating
 * (visit.c) post their write and continue in its completion.
 *
 * Control loop. Between the post and the completion the loop serves
 * everyone else, so a waiter holds no pointer: it names the user, the
 * session and the request by id and finds them again. The user is kept
 * (user.steps_pending) so the step's outcome always has someone to land
 * on; the session may have gone, and then nobody is answered.
 */
#include "signaling_internal.h"

#include <string.h>

void tm__waiter_init(tm__waiter *w, request *r)
{
    g_strlcpy(w->user_key, r->u->key, sizeof(w->user_key));
    g_strlcpy(w->session_id, r->s->id, sizeof(w->session_id));
    w->request_id = g_strdup(r->id);
    w->msg = json_incref(r->msg);
    r->u->steps_pending++;
}

user *tm__waiter_done(tm_signaling *sig, tm__waiter *w, request *r)
{
    user *u = g_hash_table_lookup(sig->users, w->user_key);
    TM_ASSERT(u && u->steps_pending > 0); /* steps_pending kept it */
    u->steps_pending--;
    session *s = u->sess && strcmp(u->sess->id, w->session_id) == 0 ? u->sess : NULL;
    *r = (request){.sig = sig, .s = s, .u = u, .msg = w->msg, .id = w->request_id};
    return u;
}

void tm__waiter_clear(tm__waiter *w)
{
    g_free(w->request_id);
    json_decref(w->msg);
}

void tm__step_reply_ok(request *r, json_t *data)
{
    if (r->s)
        tm__reply_ok(r->s, r->id, data);
    else
        json_decref(data);
}

void tm__step_reply_err(request *r, int err, const char *message)
{
    if (r->s)
        tm__reply_err(r->s, r->id, err, message);
}
