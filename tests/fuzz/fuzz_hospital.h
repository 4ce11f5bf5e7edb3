/*
 * fuzz_hospital.h - what the signaling and HTTP fuzz targets share: a data
 * directory (in memory where /dev/shm exists: every visit step fsyncs the
 * database) removed at exit, the server's config with its defaults, the
 * demo hospital seeded once into a template database that each input
 * copies, so an input starts from the same state and a crash reproduces
 * alone, and good tokens.
 */
#ifndef TM_FUZZ_HOSPITAL_H
#define TM_FUZZ_HOSPITAL_H

#include "telemed/config.h"
#include "telemed/jwt.h"
#include "telemed/store.h"

/* The HS256 secret of fuzz_hospital_token's tokens. */
#define FUZZ_HOSPITAL_SECRET "fuzz-hospital-secret-0123456789abcdef"

/* Prints "name: what: detail" and aborts: the fuzzer keeps the input. */
_Noreturn void fuzz_fail(const char *what, const char *detail);

/* Once per process: the data directory, cfg loaded from defaults with
 * data_dir there (its paths resolved), and the seeded template. name
 * prefixes the directory and fuzz_fail's messages; verbose keeps info logs. */
void fuzz_hospital_setup(const char *name, tm_config *cfg, bool verbose);
/* The template copied afresh and opened (tm_store_free it). */
tm_store *fuzz_hospital_open(const tm_config *cfg);
/* A token of sub as role (dept may be NULL), valid 12 h, signed in now
 * (auth_time); free() it. */
char *fuzz_hospital_token(const char *sub, tm_role role, const char *dept);

#endif
