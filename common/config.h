/*
 * common/config: the parser of wrapd.conf, shared by every program and module.
 *
 * It owns the file syntax (one strict "key = value" per line, '#' comment
 * lines, bounded size and line length, no control characters) and the value
 * types (string, path, bool, int with a range, duration, enum). It does not
 * own any key: each module declares its own keys in a table of struct
 * config_key (offsets into that module's settings struct) and hands
 * {table, struct pointer} to config_load as a struct config_section. One file
 * serves several modules and programs: a key no section knows is refused with
 * "file:line: unknown key", and a section whose base is NULL is checked but
 * not stored (a program validating another program's keys in the shared file).
 *
 * Strings are malloc'ed and wiped on free (config_section_free). The file is
 * hostile input: every error is one line naming the file and the line.
 */
#ifndef WRAPD_COMMON_CONFIG_H
#define WRAPD_COMMON_CONFIG_H

#include "common/common.h"

#define CONFIG_MAX_BYTES (64 * 1024) /* the whole file */
#define CONFIG_MAX_LINE 4096         /* one line, newline excluded */

enum config_type {
	CONFIG_STRING,   /* char *: text without control characters, not empty unless CONFIG_EMPTY_OK */
	CONFIG_PATH,     /* char *: a file name; absolute when read from a file */
	CONFIG_BOOL,     /* bool: Go's strconv.ParseBool (1 t T TRUE true True, 0 f ...) */
	CONFIG_INT,      /* int: decimal, within [min, max] */
	CONFIG_DURATION, /* long (milliseconds): N (seconds), Nms, Ns, Nm, Nh; within [min, max] ms */
	CONFIG_ENUM,     /* int: the index of the value in names[] */
};

/* Extra validation of a string value; on refusal writes the reason, without
 * location, into why (e.g. "vault_key 'a b' may hold only ..."). */
typedef bool (*config_check_fn)(const char *key, const char *value, char *why, size_t whylen);

#define CONFIG_ENV_ONLY 0x1u  /* refused in a file (secrets): environment or config_set only */
#define CONFIG_EMPTY_OK 0x2u  /* STRING: "" is a value (every other type refuses it) */

struct config_key {
	const char *name;            /* lowercase letters, digits, '_' */
	enum config_type type;
	size_t off;                  /* offsetof() in the section's struct */
	const char *env;             /* environment variable overriding it, or NULL */
	long long min, max;          /* INT and DURATION (ms) range; both 0 = INT 0..INT_MAX, DURATION > 0 */
	const char *const *names;    /* ENUM: NULL-terminated list */
	config_check_fn check;       /* STRING/PATH: optional extra check */
	unsigned flags;              /* CONFIG_ENV_ONLY, CONFIG_EMPTY_OK */
	const char *hint;            /* CONFIG_ENV_ONLY: what to use instead, for the error line */
};

struct config_section {
	const struct config_key *keys;
	size_t nkeys;
	void *base;                  /* the struct the offsets point into; NULL = check only */
};

/*
 * Parses a file's contents into the sections (a NULL-terminated array).
 * path only names the file in errors. Unknown keys, repeated keys, bad values
 * and bad lines are refused with "path:line: ...".
 */
int config_parse(const char *path, const char *buf, size_t len,
		 const struct config_section *const *sections, struct werr *err);

/*
 * Reads and parses a file. missing_ok: a file that does not exist is not an
 * error (rc 0, nothing set); any other failure (unreadable, not a regular
 * file, too big, untrusted owner or mode) is.
 */
int config_load(const char *path, bool missing_ok, const struct config_section *const *sections,
		struct werr *err);

/* Sets one key of one section by name, with the same validation as the file
 * (CONFIG_ENV_ONLY keys included). -ENOENT when the section has no such key. */
int config_set(const struct config_section *s, const char *key, const char *value,
	       struct werr *err);

/* Applies each key's env variable, when set and non-empty, from a getenv-like
 * function. Errors read "environment VAR: reason". */
int config_apply_env(const struct config_section *s, const char *(*get)(const char *name),
		     struct werr *err);

/* Frees (wiping) every string of the section and sets it to NULL. */
void config_section_free(const struct config_section *s);
/* Deep-copies the strings of src's struct into dst's (same table); the other
 * fields must already be copied (e.g. by struct assignment). On failure the
 * strings of dst are NULL or owned copies: free with config_section_free. */
int config_section_copy_strings(const struct config_section *dst, const struct config_section *src);

/* The value parsers, for command-line options that take the same syntax. */
int config_parse_bool(const char *s, bool *out);
int config_parse_duration_ms(const char *s, long *out);

#endif
