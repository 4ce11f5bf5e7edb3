/*
 * store_schema.h - the SQLite schema, as forward migrations.
 *
 * Migration i takes the database from user_version i to i+1. Never edit a
 * migration that has shipped; append a new one. Times are epoch milliseconds
 * (UTC); ids are text so that hospital systems can bring their own.
 */
#ifndef TELEMED_STORE_SCHEMA_H
#define TELEMED_STORE_SCHEMA_H

static const char *const tm_store_migrations[] = {
    /* 1: the foundation */
    "CREATE TABLE departments("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"

    "CREATE TABLE doctors("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  licence_no TEXT,"
    "  title TEXT,"
    "  active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL);"

    "CREATE TABLE shifts("
    "  id TEXT PRIMARY KEY,"
    "  doctor_id TEXT NOT NULL REFERENCES doctors(id),"
    "  dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  start_at INTEGER NOT NULL,"
    "  end_at INTEGER NOT NULL,"
    "  capacity INTEGER NOT NULL DEFAULT 1 CHECK(capacity >= 1),"
    "  created_at INTEGER NOT NULL,"
    "  CHECK(end_at > start_at));"
    "CREATE INDEX shifts_by_time ON shifts(dept_id, start_at, end_at);"
    "CREATE INDEX shifts_by_doctor ON shifts(doctor_id, start_at);"

    "CREATE TABLE appointments("
    "  id TEXT PRIMARY KEY,"
    "  patient_id TEXT NOT NULL,"
    "  dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  doctor_id TEXT REFERENCES doctors(id),"
    "  slot_at INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK(kind IN ('follow_up','first')),"
    "  status TEXT NOT NULL DEFAULT 'booked'"
    "    CHECK(status IN ('booked','arrived','fulfilled','cancelled','noshow')),"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX appointments_by_patient ON appointments(patient_id, slot_at);"
    "CREATE INDEX appointments_by_dept ON appointments(dept_id, slot_at);"

    /* A visit is one consultation from check-in to its end. */
    "CREATE TABLE visits("
    "  id TEXT PRIMARY KEY,"
    "  patient_id TEXT NOT NULL,"
    "  dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  appointment_id TEXT REFERENCES appointments(id),"
    "  doctor_id TEXT REFERENCES doctors(id),"
    "  kind TEXT NOT NULL CHECK(kind IN ('follow_up','first')),"
    "  urgent INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL CHECK(state IN ('waiting','offered','active','ended','cancelled')),"
    "  checkin_at INTEGER NOT NULL,"
    "  offered_at INTEGER,"
    "  accepted_at INTEGER,"
    "  ended_at INTEGER,"
    "  end_reason TEXT,"
    "  ended_by TEXT,"
    "  queue_wait_ms INTEGER," /* check-in -> accept */
    "  response_ms INTEGER,"   /* check-in -> accept, as hospitals judge doctors */
    "  duration_ms INTEGER,"   /* accept -> end */
    "  offers INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX visits_by_state ON visits(state);"
    "CREATE INDEX visits_by_checkin ON visits(checkin_at);"
    "CREATE INDEX visits_by_doctor ON visits(doctor_id, checkin_at);"
    "CREATE INDEX visits_by_patient ON visits(patient_id, checkin_at);"

    "CREATE TABLE participants("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  user_id TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK(role IN ('patient','doctor','supervisor')),"
    "  user_agent TEXT,"
    "  joined_at INTEGER NOT NULL,"
    "  left_at INTEGER,"
    "  leave_reason TEXT);"
    "CREATE INDEX participants_by_visit ON participants(visit_id);"

    /* Every offer made to a doctor, so declines and timeouts are on record. */
    "CREATE TABLE offers("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  doctor_id TEXT NOT NULL,"
    "  offered_at INTEGER NOT NULL,"
    "  outcome TEXT CHECK(outcome IN ('accepted','declined','timeout','withdrawn')),"
    "  decided_at INTEGER);"
    "CREATE INDEX offers_by_visit ON offers(visit_id);"

    "CREATE TABLE chat_messages("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  sender_id TEXT NOT NULL,"
    "  sender_role TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  sent_at INTEGER NOT NULL);"
    "CREATE INDEX chat_by_visit ON chat_messages(visit_id, id);"

    "CREATE TABLE notes("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  doctor_id TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  diagnosis_code TEXT," /* ICD-10, optional */
    "  signed INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX notes_by_visit ON notes(visit_id);"

    "CREATE TABLE ratings("
    "  visit_id TEXT PRIMARY KEY REFERENCES visits(id),"
    "  patient_id TEXT NOT NULL,"
    "  score INTEGER NOT NULL CHECK(score BETWEEN 1 AND 5),"
    "  comment TEXT,"
    "  created_at INTEGER NOT NULL);"

    "CREATE TABLE recordings("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  path TEXT NOT NULL,"
    "  format TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK(state IN "
    "('recording','complete','incomplete','failed','deleted')),"
    "  size_bytes INTEGER,"
    "  duration_ms INTEGER,"
    "  sha256 TEXT,"
    "  encrypted INTEGER NOT NULL DEFAULT 0,"
    "  failure TEXT,"
    "  dropped_packets INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  deleted_at INTEGER,"
    "  deleted_by_policy TEXT);"
    "CREATE INDEX recordings_by_visit ON recordings(visit_id);"

    "CREATE TABLE stream_stats("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  user_id TEXT NOT NULL,"
    "  direction TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  summary TEXT NOT NULL," /* JSON: averages, maxima, totals */
    "  recorded_at INTEGER NOT NULL);"
    "CREATE INDEX stream_stats_by_visit ON stream_stats(visit_id);"

    "CREATE TABLE audit_log("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor_id TEXT NOT NULL,"
    "  actor_role TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT,"
    "  outcome TEXT NOT NULL DEFAULT 'ok',"
    "  detail TEXT);"
    "CREATE INDEX audit_by_at ON audit_log(at);"
    "CREATE INDEX audit_by_target ON audit_log(target);"

    /* The regulator feed's transactional outbox: a row is written in the same
     * transaction as the visit change it reports. seq is the feed's sequence
     * number; payload is the event's data at the time of the change. */
    "CREATE TABLE outbox("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  event_id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  visit_id TEXT NOT NULL,"
    "  occurred_at INTEGER NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK(state IN ('pending','delivered','dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  delivered_at INTEGER,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  last_response TEXT);"
    "CREATE INDEX outbox_pending ON outbox(state, visit_id, seq);",

    /* 2: informed consent to recording, as the patient gave it at check-in
     * (NULL: not asked). The hospital's policy decides whether to record;
     * the record keeps what the patient was told and agreed to. */
    "ALTER TABLE visits ADD COLUMN recording_consent INTEGER;",

    /* 3: for a recording encrypted at rest, the SHA-256 of the Matroska
     * stream before encryption: what a decrypted copy must hash to. */
    "ALTER TABLE recordings ADD COLUMN plain_sha256 TEXT;",

    /* 4: batch upload profiles (a provincial platform's nightly upload).
     * upload_records holds one row per business record and profile: the
     * UNIQUE key is what makes each business id go out once, across
     * restarts; source is the snapshot of the facts taken when the day was
     * staged. upload_days says which days were staged and checked in.
     * regulator_ids holds the identifiers a platform wants that the
     * hospital's identity system owns (certificate numbers, platform codes). */
    "CREATE TABLE upload_records("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  profile TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK(kind IN ('visit','rating')),"
    "  buss_id TEXT NOT NULL,"
    "  visit_id TEXT NOT NULL,"
    "  day TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK(state IN ('pending','delivered','dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  staged_at INTEGER NOT NULL,"
    "  delivered_at INTEGER,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  last_response TEXT,"
    "  UNIQUE(profile, kind, buss_id));"
    "CREATE INDEX upload_records_pending ON upload_records(profile, state, kind, id);"
    "CREATE INDEX visits_by_ended ON visits(ended_at);"
    "CREATE TABLE upload_days("
    "  profile TEXT NOT NULL,"
    "  day TEXT NOT NULL,"
    "  staged_at INTEGER NOT NULL,"
    "  records INTEGER NOT NULL,"
    "  checkin_at INTEGER,"
    "  PRIMARY KEY(profile, day));"
    "CREATE TABLE regulator_ids("
    "  kind TEXT NOT NULL CHECK(kind IN ('doctor','patient','dept')),"
    "  local_id TEXT NOT NULL,"
    "  cert_type TEXT,"
    "  code TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY(kind, local_id));",

    /* 5: the hash chain over each visit's outbox events (visit_chain.h),
     * written by tm__store_outbox_append with each row. Rows written before
     * this migration, or around the store, have none. */
    "ALTER TABLE outbox ADD COLUMN chain_hash TEXT;"
    "CREATE INDEX outbox_by_visit ON outbox(visit_id, seq);",

    /* 6: the seal over each finished visit record (visit_seal.h): the
     * statement exactly as signed, its signature and the key that made it.
     * visits.sealed_at marks the visit final; the partial index keeps the
     * sealing sweep's search to the visits over and not yet sealed. */
    "CREATE TABLE visit_seals("
    "  visit_id TEXT PRIMARY KEY REFERENCES visits(id),"
    "  sealed_at INTEGER NOT NULL,"
    "  algorithm TEXT NOT NULL,"
    "  key_id TEXT NOT NULL,"
    "  statement TEXT NOT NULL,"
    "  signature TEXT NOT NULL);"
    "ALTER TABLE visits ADD COLUMN sealed_at INTEGER;"
    "CREATE INDEX visits_unsealed ON visits(ended_at)"
    "  WHERE sealed_at IS NULL AND state IN ('ended','cancelled');",

    /* 7: the evidence the supervision rules ask for around a visit. consents
     * keeps each informed consent as given (the patient's at check-in; a
     * guest's or interpreter's notice when they join): which text version,
     * to what, when, from which connection. The visit keeps how the doctor
     * proved who they were before accepting it, and the advice a doctor gave
     * on terminate_and_refer. */
    "CREATE TABLE consents("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  kind TEXT NOT NULL CHECK(kind IN ('patient','guest','interpreter')),"
    "  user_id TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  recording INTEGER NOT NULL,"
    "  session_id TEXT,"
    "  accepted_at INTEGER NOT NULL);"
    "CREATE INDEX consents_by_visit ON consents(visit_id, id);"
    "ALTER TABLE visits ADD COLUMN doctor_verify_method TEXT;"
    "ALTER TABLE visits ADD COLUMN doctor_verify_amr TEXT;"
    "ALTER TABLE visits ADD COLUMN doctor_verified_at INTEGER;"
    "ALTER TABLE visits ADD COLUMN referral_advice TEXT;",

    /* 8: the gaps in a visit's media: one row per participant whose media
     * stopped arriving and came back (ended_at NULL: never came back before
     * the visit ended), so the record says where the recording is silent. */
    "CREATE TABLE media_interruptions("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  user_id TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  ended_at INTEGER);"
    "CREATE INDEX media_interruptions_by_visit ON media_interruptions(visit_id);",

    /* 9 (issue 17, recording parts; keep it after the other issue-17 migrations):
     * a visit whose sender set grows while it is recorded gets a file per
     * part (media.h, tm_media_visit_record_parts), each its own row. */
    "ALTER TABLE recordings ADD COLUMN part INTEGER NOT NULL DEFAULT 1;",

    /* 10: visits of more than two (issue 17). A participant row gets the
     * visit role it held (attending, consulting, interpreter, nurse, guest;
     * NULL for a watching supervisor); the table is rebuilt because SQLite
     * cannot widen a CHECK. doctors.kind says which staff the lobby offers
     * patients to (doctors only). invites keeps every invitation with its
     * outcome; guest_links every one-time family link, its code and resume
     * secret as SHA-256 only. */
    "CREATE TABLE participants_v10("
    "  id INTEGER PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  user_id TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK(role IN ('patient','doctor','supervisor','guest')),"
    "  visit_role TEXT CHECK(visit_role IN"
    "    ('patient','attending','consulting','interpreter','nurse','guest')),"
    "  user_agent TEXT,"
    "  joined_at INTEGER NOT NULL,"
    "  left_at INTEGER,"
    "  leave_reason TEXT);"
    "INSERT INTO participants_v10(id, visit_id, user_id, role, visit_role, user_agent, joined_at,"
    "  left_at, leave_reason)"
    "  SELECT id, visit_id, user_id, role,"
    "    CASE role WHEN 'patient' THEN 'patient' WHEN 'doctor' THEN 'attending' END,"
    "    user_agent, joined_at, left_at, leave_reason FROM participants;"
    "DROP TABLE participants;"
    "ALTER TABLE participants_v10 RENAME TO participants;"
    "CREATE INDEX participants_by_visit ON participants(visit_id, user_id);"
    "ALTER TABLE doctors ADD COLUMN kind TEXT NOT NULL DEFAULT 'doctor'"
    "  CHECK(kind IN ('doctor','nurse','interpreter'));"
    "CREATE TABLE invites("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  inviter_id TEXT NOT NULL,"
    "  invitee_id TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK(role IN ('consulting','interpreter','nurse')),"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  outcome TEXT CHECK(outcome IN"
    "    ('accepted','declined','timeout','cancelled','visit_ended')),"
    "  decided_at INTEGER);"
    "CREATE INDEX invites_by_visit ON invites(visit_id);"
    "CREATE TABLE guest_links("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  code_sha256 TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  created_by_role TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'open' CHECK(state IN ('open','used','revoked')),"
    "  used_at INTEGER,"
    "  guest_id TEXT UNIQUE,"
    "  resume_sha256 TEXT UNIQUE,"
    "  revoked_at INTEGER,"
    "  revoked_by TEXT);"
    "CREATE INDEX guest_links_by_visit ON guest_links(visit_id);",

    /* 11 (issue 17): the review rendition of a visit's recording (server/review.c): one
     * WebM with every video in a grid and every voice mixed, made after the
     * visit from its recording parts. Derived from the evidence, never the
     * evidence: a row per attempt, so a failed one stays on record. */
    "CREATE TABLE renditions("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  path TEXT,"
    "  format TEXT NOT NULL DEFAULT 'webm',"
    "  state TEXT NOT NULL CHECK(state IN "
    "('queued','rendering','complete','failed','deleted')),"
    "  size_bytes INTEGER,"
    "  duration_ms INTEGER,"
    "  sha256 TEXT,"
    "  plain_sha256 TEXT,"
    "  encrypted INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  parts INTEGER,"
    "  cpu_ms INTEGER,"
    "  queued_at INTEGER NOT NULL,"
    "  started_at INTEGER,"
    "  finished_at INTEGER,"
    "  deleted_at INTEGER);"
    "CREATE INDEX renditions_by_visit ON renditions(visit_id);"
    "CREATE INDEX renditions_by_state ON renditions(state, queued_at);",

    /* 12 (issue 18, figures): the doctor and department figures read bounded
     * ranges of time (server/store_figures.c); these keep each read a range
     * scan: visits by accept, no-shows by slot, the network's outbox events
     * by type and time. */
    "CREATE INDEX IF NOT EXISTS visits_by_accepted ON visits(accepted_at);"
    "CREATE INDEX IF NOT EXISTS appointments_by_status ON appointments(status, slot_at);"
    "CREATE INDEX IF NOT EXISTS outbox_by_type ON outbox(type, occurred_at);",

    /* 13 (issue 18, consultation requests): a doctor asks a department (or a
     * named specialist) for a remote consultation (远程会诊) about a patient;
     * the department schedules, proposes another time or declines. Once
     * scheduled it holds the patient's appointment; once held, its visit and
     * the specialist's signed opinion. */
    "CREATE TABLE consultations("
    "  id TEXT PRIMARY KEY,"
    "  patient_id TEXT NOT NULL,"
    "  requester_id TEXT NOT NULL,"
    "  requester_dept_id TEXT NOT NULL,"
    "  origin_visit_id TEXT,"
    "  dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  specialist_id TEXT,"
    "  reason TEXT NOT NULL,"
    "  question TEXT NOT NULL,"
    "  attachments TEXT NOT NULL DEFAULT '[]',"
    "  window_start_at INTEGER NOT NULL,"
    "  window_end_at INTEGER NOT NULL,"
    "  urgency TEXT NOT NULL CHECK(urgency IN ('routine','urgent','emergency')),"
    "  state TEXT NOT NULL CHECK(state IN ('requested','proposed','scheduled','in_progress',"
    "    'completed','declined','cancelled')),"
    "  proposed_slot_at INTEGER,"
    "  proposed_specialist_id TEXT,"
    "  proposed_by TEXT,"
    "  slot_at INTEGER,"
    "  scheduled_by TEXT,"
    "  scheduled_at INTEGER,"
    "  appointment_id TEXT,"
    "  visit_id TEXT,"
    "  declined_by TEXT,"
    "  decline_reason TEXT,"
    "  cancelled_by TEXT,"
    "  opinion TEXT,"
    "  opinion_diagnosis_code TEXT,"
    "  opinion_signed_at INTEGER,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX consultations_by_dept ON consultations(dept_id, state);"
    "CREATE INDEX consultations_by_requester ON consultations(requester_id, state);"
    "CREATE INDEX consultations_by_appointment ON consultations(appointment_id);"
    "CREATE INDEX consultations_by_visit ON consultations(visit_id);",

    /* 14 (issue 18, transfer18: transfer and referral). visit_transfers: each
     * time the attending doctor handed a live visit on, the part that ended
     * (who, from which department, since when) and where it went, with the
     * reason; accepted_by/at when the next doctor took it. referrals: a
     * patient sent up or down the alliance from a visit, with the receiving
     * side's answer; a re-sent one is a new row naming the one it replaces. */
    "CREATE TABLE visit_transfers("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  part INTEGER NOT NULL,"
    "  from_doctor_id TEXT NOT NULL,"
    "  from_dept_id TEXT NOT NULL,"
    "  part_started_at INTEGER NOT NULL,"
    "  to_dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  to_doctor_id TEXT,"
    "  reason TEXT NOT NULL,"
    "  transferred_at INTEGER NOT NULL,"
    "  accepted_by TEXT,"
    "  accepted_at INTEGER,"
    "  UNIQUE(visit_id, part));"
    "CREATE TABLE referrals("
    "  id TEXT PRIMARY KEY,"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  patient_id TEXT NOT NULL,"
    "  from_doctor_id TEXT NOT NULL,"
    "  from_dept_id TEXT NOT NULL,"
    "  direction TEXT NOT NULL CHECK(direction IN ('up','down')),"
    "  to_dept_id TEXT NOT NULL REFERENCES departments(id),"
    "  reason TEXT NOT NULL,"
    "  summary TEXT NOT NULL,"
    "  appointment_id TEXT REFERENCES appointments(id),"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  replaces TEXT REFERENCES referrals(id),"
    "  state TEXT NOT NULL DEFAULT 'requested'"
    "    CHECK(state IN ('requested','accepted','declined','resent')),"
    "  decided_by TEXT,"
    "  decided_at INTEGER,"
    "  decline_reason TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX referrals_by_visit ON referrals(visit_id);"
    "CREATE INDEX referrals_by_to ON referrals(to_dept_id, state, created_at);",
    /* 15 (issue 18, institutions): the alliance's members, each with the
     * identifiers the regulator wants (organisation code, level). A
     * department's institution_id NULL is the core institution, the one whose
     * id is the store's hospital_id, so a database from before keeps meaning
     * what it meant. */
    "CREATE TABLE institutions("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  org_code TEXT,"
    "  level TEXT,"
    "  kind TEXT NOT NULL CHECK(kind IN ('core','hospital','clinic')),"
    "  created_at INTEGER NOT NULL);"
    "ALTER TABLE departments ADD COLUMN institution_id TEXT;",

    /* 16 (followup18; issue 18: follow-ups, no-shows, the messaging outbox).
     * followups links a follow-up appointment to the visit it was booked in,
     * with who booked it and, for a date window, the window's last moment
     * (the appointment's slot_at is the window's first). appointment_notices
     * remembers which appointment was told due, so the sweep tells it once.
     * messaging_outbox is the messaging system's delivery state over the same
     * outbox rows (seq is the outbox row's), filled from messaging_cursor on.
     * The sweeps read appointments by (status, slot_at): migration 12's index. */
    "CREATE TABLE followups("
    "  appointment_id TEXT PRIMARY KEY REFERENCES appointments(id),"
    "  visit_id TEXT NOT NULL REFERENCES visits(id),"
    "  booked_by TEXT NOT NULL,"
    "  window_end_at INTEGER,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX followups_by_visit ON followups(visit_id);"
    "CREATE TABLE appointment_notices("
    "  appointment_id TEXT PRIMARY KEY REFERENCES appointments(id),"
    "  due_at INTEGER);"
    "CREATE TABLE messaging_outbox("
    "  seq INTEGER PRIMARY KEY REFERENCES outbox(seq),"
    "  visit_id TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK(state IN ('pending','delivered','dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  delivered_at INTEGER,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  last_response TEXT);"
    "CREATE INDEX messaging_outbox_pending ON messaging_outbox(state, visit_id, seq);"
    "CREATE TABLE messaging_cursor("
    "  id INTEGER PRIMARY KEY CHECK(id = 1),"
    "  last_seq INTEGER NOT NULL);"
    "INSERT INTO messaging_cursor VALUES(1, 0);",

    /* 17 (reg16b, profiles per institution): feed_routes says which alliance
     * member has a delivery profile of its own (written from config at each
     * start); routed_outbox is the delivery state of the rows routed to a
     * member's own webhook (seq is the outbox row's), filled from
     * routed_cursor on. The cursor starts at the newest row: events written
     * before routing existed stay with the deployment's profiles. */
    "CREATE TABLE feed_routes("
    "  institution_id TEXT PRIMARY KEY,"
    "  profile TEXT NOT NULL);"
    "CREATE TABLE routed_outbox("
    "  seq INTEGER PRIMARY KEY REFERENCES outbox(seq),"
    "  institution_id TEXT NOT NULL,"
    "  visit_id TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK(state IN ('pending','delivered','dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  delivered_at INTEGER,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  last_response TEXT);"
    "CREATE INDEX routed_outbox_pending ON routed_outbox(institution_id, state, visit_id, seq);"
    "CREATE TABLE routed_cursor("
    "  id INTEGER PRIMARY KEY CHECK(id = 1),"
    "  last_seq INTEGER NOT NULL);"
    "INSERT INTO routed_cursor(id, last_seq) SELECT 1, coalesce(max(seq), 0) FROM outbox;",
    /* 18 (issue 19, cluster19: several nodes on one database). nodes is the
     * registry: each node's heartbeat (a node is dead when it is too old),
     * its load (live visits, waiting patients, media peers) and whether it
     * drains. visits.media_node is the node hosting a visit (its waiting
     * patient's connection, then its media); the outbox's leased_by and
     * lease_until let one node at a time deliver a row, and a dead node's
     * lease is taken over once it has expired. */
    "CREATE TABLE nodes("
    "  id TEXT PRIMARY KEY,"
    "  public_url TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  heartbeat_at INTEGER NOT NULL,"
    "  visits INTEGER NOT NULL DEFAULT 0,"
    "  waiting INTEGER NOT NULL DEFAULT 0,"
    "  peers INTEGER NOT NULL DEFAULT 0,"
    "  draining INTEGER NOT NULL DEFAULT 0);"
    "ALTER TABLE visits ADD COLUMN media_node TEXT;"
    "CREATE INDEX visits_by_media_node ON visits(media_node, state);"
    "ALTER TABLE outbox ADD COLUMN leased_by TEXT;"
    "ALTER TABLE outbox ADD COLUMN lease_until INTEGER;",
    /* 19 (issue 19, ops19): each node's doctors on duty per department, so
     * that a waiting patient's estimate counts the doctors of every live
     * node. A row per node and department with doctors on duty; a node
     * writes its rows when its count changes, and dead nodes' rows are left
     * out by their heartbeat. */
    "CREATE TABLE node_duty("
    "  node_id TEXT NOT NULL,"
    "  dept_id TEXT NOT NULL,"
    "  doctors INTEGER NOT NULL,"
    "  PRIMARY KEY(node_id, dept_id));",
    /* 20 (issue 19, fail19): a live visit whose node died resumes on another,
     * and its recording goes on there as the next segment. A row says which
     * node wrote it (node_id; NULL before this migration) and which segment
     * of its visit it belongs to (parts number the files within a segment). */
    "ALTER TABLE recordings ADD COLUMN node_id TEXT;"
    "ALTER TABLE recordings ADD COLUMN segment INTEGER NOT NULL DEFAULT 1;",
    /* 21 (issue 19, lease19): the messaging and routed queues, the batch
     * upload records and their days' check-ins are leased like the outbox
     * itself, so each is sent by one node at a time (store.h, "the
     * regulator outbox"). */
    "ALTER TABLE messaging_outbox ADD COLUMN leased_by TEXT;"
    "ALTER TABLE messaging_outbox ADD COLUMN lease_until INTEGER;"
    "ALTER TABLE routed_outbox ADD COLUMN leased_by TEXT;"
    "ALTER TABLE routed_outbox ADD COLUMN lease_until INTEGER;"
    "ALTER TABLE upload_records ADD COLUMN leased_by TEXT;"
    "ALTER TABLE upload_records ADD COLUMN lease_until INTEGER;"
    "ALTER TABLE upload_days ADD COLUMN leased_by TEXT;"
    "ALTER TABLE upload_days ADD COLUMN lease_until INTEGER;",
    /* 22 (issue 19, ux19): when the patient of a visit dropped, as the node
     * holding it saw (NULL while connected). A doctor on another node is
     * not offered a waiting patient who is in their grace period on the
     * node holding them, as that node's own doctors are not. */
    "ALTER TABLE visits ADD COLUMN patient_away_at INTEGER;",
    /* 23 (issue 19, beat19): how late the node's control loop is, as its
     * heartbeat thread last saw (server/cluster.c): a node can be slow and
     * alive, and the others say so without taking it over. */
    "ALTER TABLE nodes ADD COLUMN loop_lag_ms INTEGER NOT NULL DEFAULT 0;",
};

#endif
