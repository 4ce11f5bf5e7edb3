/*
 * fhir.h - a visit record as an HL7 FHIR R4 Encounter, for
 * GET /api/v1/visits/{id}/fhir. Pure function from the JSON that
 * tm_store_visit_record() returns; any thread.
 *
 * The Encounter is self-contained: the patient, the doctor, each recording
 * (Media) and each chat message (Communication) are contained resources,
 * referenced with "#id", and carry the hospital's own ids as identifiers
 * (telemed stores ids, not names, so no names appear). The appointment is
 * a plain reference ("Appointment/<id>") because the hospital system owns
 * it.
 *
 * Codes: class VR from http://terminology.hl7.org/CodeSystem/v3-ActCode;
 * the doctor as ATND from .../v3-ParticipationType; priority UR/R from
 * .../v3-ActPriority; length in UCUM minutes; reasonCode from ICD-10
 * (http://hl7.org/fhir/sid/icd-10) for each diagnosis code in the notes.
 *
 * Recording hashes: R4's Attachment.hash is defined as base64 SHA-1. We
 * keep SHA-256 (SHA-1 is broken for collision resistance, and the visit
 * record and the regulator feed already carry SHA-256), so the hex SHA-256
 * goes in the extension TM_FHIR_EXT_SHA256 and Attachment.hash is left out
 * rather than filled with a second, weaker hash that would need the whole
 * file re-read.
 */
#ifndef TELEMED_FHIR_H
#define TELEMED_FHIR_H

#include <jansson.h>

/* Base of telemed's own extension and identifier URLs. */
#define TM_FHIR_BASE "https://telemed.invalid/fhir"
#define TM_FHIR_EXT_SHA256 TM_FHIR_BASE "/StructureDefinition/attachment-sha256"
#define TM_FHIR_EXT_ENCRYPTED TM_FHIR_BASE "/StructureDefinition/attachment-encrypted"
#define TM_FHIR_EXT_END_REASON TM_FHIR_BASE "/StructureDefinition/encounter-end-reason"

/* Builds the Encounter for visit_record (borrowed; as from
 * tm_store_visit_record). hospital_id names the serviceProvider and scopes
 * the identifiers. Returns a new reference (json_decref) or NULL when the
 * record lacks its id, patient or state. */
json_t *tm_fhir_encounter(json_t *visit_record, const char *hospital_id);

/* One appointment (a row as tm_store_appt_list returns it) as an R4
 * Appointment: status (booked, arrived, fulfilled, cancelled, noshow are
 * R4 codes as they are), start = the slot, end = start + slot_minutes (R4
 * requires both once booked; the store keeps no slot length), created,
 * appointmentType FOLLOWUP/ROUTINE from
 * http://terminology.hl7.org/CodeSystem/v2-0276 for follow-up/first
 * visits, and the patient and (if assigned) the doctor as participants by
 * identifier. Returns a new reference or NULL when id, patient, slot or
 * status is missing. */
json_t *tm_fhir_appointment(json_t *appointment, const char *hospital_id, int slot_minutes);

/* ---- referral (issue 18, transfer18) ---- */

#define TM_FHIR_EXT_REFERRAL_STATE TM_FHIR_BASE "/StructureDefinition/referral-state"
#define TM_FHIR_EXT_DECLINE_REASON TM_FHIR_BASE "/StructureDefinition/referral-decline-reason"

/* A referral (as tm_store_referral_get returns it) and the Encounter of the
 * visit it came from (tm_fhir_encounter's, may be NULL) as a Bundle of type
 * collection: the R4 ServiceRequest first, then the Encounter, each with a
 * fullUrl under TM_FHIR_BASE so that ServiceRequest.encounter
 * ("Encounter/<visit id>") resolves inside the Bundle. The ServiceRequest:
 * status active (requested, accepted) or revoked (declined, resent),
 * intent order, category SNOMED CT 3457005 (patient referral), code text
 * up/down, subject, requester and performer (the receiving institution,
 * from the referral's "to_institution" {id, name} when present, as an
 * Organization, then the receiving department) by
 * identifier, authoredOn, reasonCode text (the reason), note (the summary),
 * replaces (an earlier version), supportingInfo (the booked Appointment),
 * the referral's state and a decline reason as extensions. Both borrowed;
 * returns a new reference or NULL when the referral lacks id, visit,
 * patient or state. */
json_t *tm_fhir_referral(json_t *referral, json_t *encounter, const char *hospital_id);

#endif
