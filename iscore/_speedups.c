/* Optional C speed-ups for the compiled scorer (iscore/compiled.py): read a whole batch of headlines in C.
 *
 * The Python code in iscore/features.py is the reference and stays the artifact's definition; this module
 * reproduces, for headlines it can read exactly, what these produce from one headline:
 *   HeadlineCleaner.clean -> the cleaned text;
 *   the word n-grams of TfidfVectorizer's default analyzer (token pattern \w\w+) -> vocabulary columns;
 *   WORD_TOKEN tokens -> StaticEmbedder vocabulary rows;
 *   content_stats and the magnitude columns (largest_quantity, harm_of, scale_of, harm_quantity).
 * It reads a headline only when every character is ASCII or one of EXTRA (dashes, curly quotes, a few
 * currency signs, NBSP): there Python's Unicode rules reduce to ASCII ones (a test checks each EXTRA
 * character's class). Any other headline is left to the Python code ("fallback"), so a score is never
 * computed by rules this file does not know. tests/core/test_speedups.py compares both on random text.
 *
 * Built by setup.py as an optional extension: without a compiler the project installs and runs the same
 * Python code, slower.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t ch_t;

/* Characters beyond ASCII read here. EXTRA: white space (NBSP) or characters that are no word character, no
 * digit, no white space and have no case, so every rule below treats them as any ASCII punctuation. Latin-1
 * letters (U+00C0-U+00FF but the signs U+00D7 and U+00F7): word characters, no digit, never in [A-Za-z], and
 * lower() maps U+00C0-U+00DE to the letter 0x20 above (tests/core/test_speedups.py checks all of it). */
static const ch_t EXTRA[] = {0xA0,   0xA3,   0xA9,   0xAB,   0xAE,   0xB0,   0xB7,   0xBB,   0x200B, 0x200C,
                             0x200D, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2026, 0x20AC,
                             0x2122, 0x25BA, 0xFEFF};
#define N_EXTRA (sizeof(EXTRA) / sizeof(EXTRA[0]))

static int latin_letter(ch_t c) { return c >= 0xC0 && c <= 0xFF && c != 0xD7 && c != 0xF7; }
static int readable(ch_t c) {
    if (c < 128 || latin_letter(c)) return 1;
    for (size_t i = 0; i < N_EXTRA; i++)
        if (EXTRA[i] == c) return 1;
    return 0;
}
/* str.split()'s white space among readable characters. */
static int is_space(ch_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0xA0; }
static int is_upper(ch_t c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(ch_t c) { return c >= 'a' && c <= 'z'; }
static int is_letter(ch_t c) { return is_upper(c) || is_lower(c); }
static int is_digit(ch_t c) { return c >= '0' && c <= '9'; }
static int is_alnum(ch_t c) { return is_letter(c) || is_digit(c); }
static int is_word(ch_t c) { return is_alnum(c) || c == '_' || latin_letter(c); } /* re's \w among readable characters */
static ch_t lower(ch_t c) { return (is_upper(c) || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) ? c + 32 : c; }

/* ---- a growable array ---------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap; /* in bytes */
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}
static int buf_add(Buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
static void buf_free(Buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- the lexicon: one hash table of every word the parts look up ---------------------------------------- */

enum { F_PROPER = 1, F_COMMON = 2, F_PROMINENT = 4, F_KICKER = 8, F_HARM = 16, F_SCALE = 32, F_NUMWORD = 64, F_MULT = 128 };

/* One slot of the open-addressing table, 32 bytes: a key of up to INLINE bytes is held in the slot itself, so a
 * look-up reads one cache line (the tables hold some 100,000 words and n-grams, far more than the CPU caches). */
#define INLINE 16
#define LONG 255
typedef struct {
    char key[INLINE]; /* the key; for a longer one, its arena offset and length (two uint32) */
    uint8_t len;      /* 0: an empty slot; LONG: the key is in the arena */
    uint8_t flags;
    uint16_t tag;     /* 16 more bits of the hash: most other keys are told apart without comparing */
    int32_t col;      /* word n-gram column, -1 */
    int32_t emb;      /* token vector row, -1 */
    uint32_t vi;      /* its two numbers in vals (harm, scale; or number word, multiplier), or UINT32_MAX */
} Entry;

typedef struct {
    Entry *slots;
    size_t cap, count;
    Buf arena; /* keys longer than INLINE */
    Buf vals;  /* pairs of doubles */
} Table;

/* A 64-bit hash of a short key, eight bytes per step (keys are words and n-grams: most fit in one or two steps). */
static uint64_t hash_key(const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)(unsigned char)p[i] << (8 * i); /* not memcpy: a call for 0-7 bytes */
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}
static uint16_t tag_of(uint64_t h) { return (uint16_t)((h >> 48) | 1); }

static const char *entry_key(const Table *t, const Entry *e, size_t *n) {
    if (e->len != LONG) {
        *n = e->len;
        return e->key;
    }
    uint32_t off, len;
    memcpy(&off, e->key, 4);
    memcpy(&len, e->key + 4, 4);
    *n = len;
    return t->arena.data + off;
}

static Entry *table_find(const Table *t, const char *key, size_t n, uint64_t h) {
    if (!t->cap || !n) return NULL;
    size_t mask = t->cap - 1;
    uint16_t tag = tag_of(h);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        Entry *e = &t->slots[i];
        if (!e->len) return NULL;
        if (e->tag != tag) continue;
        size_t len;
        const char *k = entry_key(t, e, &len);
        if (len == n && memcmp(k, key, n) == 0) return e;
    }
}

static void prefetch(const Table *t, uint64_t h) {
    if (t->cap) __builtin_prefetch(&t->slots[h & (t->cap - 1)]);
}

static Entry *slot_for(Entry *slots, size_t cap, uint64_t h) {
    size_t j = h & (cap - 1);
    while (slots[j].len) j = (j + 1) & (cap - 1);
    return &slots[j];
}

static int table_grow(Table *t) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    Entry *slots = calloc(cap, sizeof(Entry));
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        Entry *e = &t->slots[i];
        if (!e->len) continue;
        size_t n;
        const char *k = entry_key(t, e, &n);
        *slot_for(slots, cap, hash_key(k, n)) = *e;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* The entry of key (added when absent); NULL with an exception set on error, and for the empty key. */
static Entry *table_add(Table *t, const char *key, size_t n) {
    if (!n) return NULL; /* no word is empty: nothing looks it up */
    uint64_t h = hash_key(key, n);
    Entry *e = table_find(t, key, n, h);
    if (e) return e;
    if ((t->count + 1) * 2 > t->cap && table_grow(t) < 0) return NULL;
    Entry fresh;
    memset(&fresh, 0, sizeof fresh);
    if (n <= INLINE) {
        memcpy(fresh.key, key, n);
        fresh.len = (uint8_t)n;
    } else {
        if (n > UINT32_MAX || t->arena.len > UINT32_MAX - n) {
            PyErr_SetString(PyExc_OverflowError, "lexicon too large");
            return NULL;
        }
        uint32_t off = (uint32_t)t->arena.len, len = (uint32_t)n;
        if (buf_add(&t->arena, key, n) < 0) return NULL;
        memcpy(fresh.key, &off, 4);
        memcpy(fresh.key + 4, &len, 4);
        fresh.len = LONG;
    }
    fresh.tag = tag_of(h);
    fresh.col = fresh.emb = -1;
    fresh.vi = UINT32_MAX;
    e = slot_for(t->slots, t->cap, h);
    *e = fresh;
    t->count++;
    return e;
}

/* The entry's two numbers (made, zero, when it has none yet); NULL on error. */
static double *entry_vals(Table *t, Entry *e) {
    if (e->vi == UINT32_MAX) {
        double zero[2] = {0.0, 0.0};
        if (t->vals.len / sizeof zero >= UINT32_MAX - 1) {
            PyErr_SetString(PyExc_OverflowError, "lexicon too large");
            return NULL;
        }
        e->vi = (uint32_t)(t->vals.len / sizeof zero);
        if (buf_add(&t->vals, zero, sizeof zero) < 0) return NULL;
    }
    return (double *)t->vals.data + 2 * (size_t)e->vi;
}
static double val(const Table *t, const Entry *e, int k) { return ((const double *)t->vals.data)[2 * (size_t)e->vi + k]; }

/* UTF-8 of s[0:n] (lower-cased when asked) into out; returns the byte length. out holds 4 * n bytes. */
static size_t utf8(const ch_t *s, size_t n, int low, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ch_t c = low ? lower(s[i]) : s[i];
        if (c < 0x80) {
            out[k++] = (char)c;
        } else if (c < 0x800) {
            out[k++] = (char)(0xC0 | (c >> 6));
            out[k++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[k++] = (char)(0xE0 | (c >> 12));
            out[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return k;
}

/* ---- the Reader object --------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Table table; /* the cleaner's names and common words, n-grams, token vector rows, harm and size axes */
    Table small; /* kickers, number words, multipliers */
    int join_runs;
    int ngram_lo, ngram_hi; /* 0, 0: no word n-grams */
    int has_embed, has_harm, has_scale;
    double share;                              /* SENTENCE_CASE_SHARE */
    size_t numword_min, numword_max;           /* the shortest and longest number word (in characters) */
    unsigned char numword_first[256];          /* the first characters of number words (lower case) */
    double harm_centre, neutral, cap, width;  /* the toll: HeadlineStats.harm_centre_, QUANTITY_CENTRE, _CAP, HARM_WIDTH */
    /* scratch, reused from headline to headline (a Reader is used by one thread at a time: the GIL is held) */
    Buf text, clean, keybuf, keys, found, words, acts, tokens, marks, runs;
} Reader;

typedef struct {
    size_t start, end;
} Span;

static const char NAME_TOKEN[] = "xname";
static const char PROMINENT_TOKEN[] = "xprominent";

static Entry *lookup(Reader *r, const Table *t, const ch_t *s, size_t n, int low) {
    if (buf_reserve(&r->keybuf, 4 * n + 4) < 0) return NULL;
    size_t k = utf8(s, n, low, r->keybuf.data);
    return table_find(t, r->keybuf.data, k, hash_key(r->keybuf.data, k));
}

/* A key of a headline, in r->keybuf, and its hash. */
typedef struct {
    size_t off, len;
    uint64_t hash;
} Key;

/* Adds s[0:n] (lower-cased when asked) to r->keybuf and its Key to keys; the slot it hashes to is prefetched, so
 * that the look-ups of a headline's keys wait for memory together rather than one after another. */
static int add_key(Reader *r, Buf *keys, const ch_t *s, size_t n, int low) {
    if (buf_reserve(&r->keybuf, 4 * n + 4) < 0) return -1;
    Key k = {r->keybuf.len, 0, 0};
    k.len = utf8(s, n, low, r->keybuf.data + k.off);
    r->keybuf.len += k.len;
    k.hash = hash_key(r->keybuf.data + k.off, k.len);
    prefetch(&r->table, k.hash);
    return buf_add(keys, &k, sizeof k);
}
static Entry *find_key(Reader *r, const Key *k) { return table_find(&r->table, r->keybuf.data + k->off, k->len, k->hash); }

/* " ".join(split()) of src[0:n] into dst (dst may be src); returns the new length. */
static size_t normalize(const ch_t *src, size_t n, ch_t *dst) {
    size_t k = 0;
    int pending = 0;
    for (size_t i = 0; i < n; i++) {
        ch_t c = src[i];
        if (is_space(c)) {
            pending = k > 0;
        } else {
            if (pending) dst[k++] = ' ';
            pending = 0;
            dst[k++] = c;
        }
    }
    return k;
}

/* HeadlineCleaner.clean of t[0:n] (t is normalised in place first) into r->clean; returns its length, -1 on error. */
static Py_ssize_t clean_text(Reader *r, ch_t *t, size_t n) {
    n = normalize(t, n, t);
    /* The kicker: ^\s*([A-Za-z][A-Za-z' ]{0,30}?)\s*[:|]\s+ on normalised text. The group cannot hold ':' or
     * '|', so the colon is the first one; the lazy group ends at the last non-space before it. */
    size_t colon = n;
    for (size_t i = 0; i < n; i++)
        if (t[i] == ':' || t[i] == '|') {
            colon = i;
            break;
        }
    if (colon < n && colon > 0 && colon + 1 < n && is_space(t[colon + 1]) && is_letter(t[0])) {
        size_t p = colon;
        while (p > 0 && t[p - 1] == ' ') p--;
        int ok = p >= 1 && p <= 31;
        for (size_t i = 1; ok && i < p; i++) ok = is_letter(t[i]) || t[i] == '\'' || t[i] == ' ';
        if (ok) {
            Entry *e = lookup(r, &r->small, t, p, 1);
            if (!e && PyErr_Occurred()) return -1;
            if (e && (e->flags & F_KICKER)) {
                size_t end = colon + 1;
                while (end < n && is_space(t[end])) end++;
                t += end;
                n -= end;
            }
        }
    }
    /* The words of _CASED_WORD: [A-Za-z][A-Za-z0-9]*(?:['\u2019][A-Za-z]+)? */
    r->words.len = 0;
    for (size_t i = 0; i < n;) {
        if (!is_letter(t[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && is_alnum(t[j])) j++;
        if (j + 1 < n && (t[j] == '\'' || t[j] == 0x2019) && is_letter(t[j + 1])) {
            j += 2;
            while (j < n && is_letter(t[j])) j++;
        }
        Span s = {i, j};
        if (buf_add(&r->words, &s, sizeof s) < 0) return -1;
        i = j;
    }
    Span *w = (Span *)r->words.data;
    size_t nw = r->words.len / sizeof(Span);
    /* What each word becomes: 0 kept, 1 NAME_TOKEN, 2 PROMINENT_TOKEN, 3 dropped with the gap before it. */
    if (buf_reserve(&r->acts, nw + 1) < 0) return -1;
    unsigned char *act = (unsigned char *)r->acts.data;
    Py_ssize_t run = -1;
    int sentence_case = -1;
    r->keybuf.len = r->keys.len = 0;
    for (size_t k = 0; k < nw; k++)
        if (add_key(r, &r->keys, t + w[k].start, w[k].end - w[k].start, 1) < 0) return -1;
    for (size_t k = 0; k < nw; k++) {
        Entry *e = find_key(r, (const Key *)r->keys.data + k);
        unsigned flags = e ? e->flags : 0;
        int up = is_upper(t[w[k].start]);
        int is_name = (flags & F_PROPER) || (up && !(flags & F_COMMON));
        int gap_blank = 1; /* the gap before the word is white space only */
        for (size_t i = k ? w[k - 1].end : 0; i < w[k].start; i++)
            if (!is_space(t[i])) {
                gap_blank = 0;
                break;
            }
        if (!is_name && run >= 0 && up && r->join_runs && gap_blank) {
            if (sentence_case < 0) {
                size_t capital = 0;
                for (size_t i = 0; i < nw; i++) capital += is_upper(t[w[i].start]);
                sentence_case = (double)capital <= r->share * (double)nw;
            }
            is_name = sentence_case;
        }
        if (is_name) {
            if (run >= 0 && gap_blank) {
                act[k] = 3;
            } else {
                act[k] = 1;
                run = (Py_ssize_t)k;
            }
            if (flags & F_PROMINENT) act[run] = 2;
        } else {
            act[k] = 0;
            run = -1;
        }
    }
    /* "".join(parts) */
    size_t room = n + 10 * nw + 1;
    r->clean.len = 0;
    if (buf_reserve(&r->clean, room * sizeof(ch_t)) < 0) return -1;
    ch_t *out = (ch_t *)r->clean.data;
    size_t m = 0, prev = 0;
    for (size_t k = 0; k < nw; k++) {
        if (act[k] != 3)
            for (size_t i = prev; i < w[k].start; i++) out[m++] = t[i];
        if (act[k] == 0) {
            for (size_t i = w[k].start; i < w[k].end; i++) out[m++] = t[i];
        } else if (act[k] != 3) {
            const char *tok = act[k] == 1 ? NAME_TOKEN : PROMINENT_TOKEN;
            for (const char *c = tok; *c; c++) out[m++] = (ch_t)*c;
        }
        prev = w[k].end;
    }
    for (size_t i = prev; i < n; i++) out[m++] = t[i];
    /* _PRESENTATION: ! " and curly double quotes always; a single quote unless a word character is on both sides
     * (the look-arounds read the joined text, as re.sub does). In place: the write index never passes the read one. */
    size_t k = 0;
    ch_t before = 0; /* the character before position i in the joined text (0: none) */
    for (size_t i = 0; i < m; i++) {
        ch_t c = out[i];
        int drop = 0;
        if (c == '!' || c == '"' || c == 0x201C || c == 0x201D) {
            drop = 1;
        } else if (c == '\'' || c == 0x2018 || c == 0x2019) {
            drop = !(i > 0 && is_word(before)) || !(i + 1 < m && is_word(out[i + 1]));
        }
        before = c;
        if (!drop) out[k++] = c;
    }
    m = normalize(out, k, out);
    for (size_t i = 0; i < m; i++) out[i] = lower(out[i]);
    return (Py_ssize_t)m;
}

/* ---- statistics of a cleaned text ---------------------------------------------------------------------- */

#define N_STATS 10 /* CONTENT_STAT_NAMES (8), then the toll and the size axis */

/* largest_quantity of s[0:n]; -1 on error. */
static int largest_quantity(Reader *r, const ch_t *s, size_t n, double *best_out) {
    double best = 0.0;
    r->marks.len = 0; /* where a multiplier word belongs to a number */
    char digits[64];
    int any_digit = 0;
    for (size_t i = 0; i < n; i++)
        if (is_digit(s[i])) {
            any_digit = 1;
            break;
        }
    for (size_t i = 0; any_digit && i < n;) {
        if (!is_digit(s[i]) || (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '.'))) {
            i++;
            continue;
        }
        /* (\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?) */
        size_t j = i;
        while (j < n && is_digit(s[j])) j++;
        size_t end = j;
        int grouped = 0, fraction = 0;
        if (j - i <= 3 && j + 3 < n && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3])) {
            end = j;
            while (end + 3 < n && s[end] == ',' && is_digit(s[end + 1]) && is_digit(s[end + 2]) && is_digit(s[end + 3]))
                end += 4;
            grouped = 1;
        } else if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
            end = j + 1;
            while (end < n && is_digit(s[end])) end++;
            fraction = 1;
        }
        /* (?:\s*(hundred|thousand|million|billion|trillion|bn|mn|tn|k|m)\b)? : the alternative, followed by a word
         * boundary, is the whole run of word characters after the spaces. */
        size_t q = end;
        while (q < n && is_space(s[q])) q++;
        size_t e = q;
        while (e < n && is_word(s[e])) e++;
        double mult = 1.0;
        int has_mult = 0;
        if (e > q && is_letter(s[q])) {
            Entry *m = lookup(r, &r->small, s + q, e - q, 1);
            if (!m && PyErr_Occurred()) return -1;
            if (m && (m->flags & F_MULT)) {
                has_mult = 1;
                mult = val(&r->small, m, 1);
            }
        }
        size_t len = end - i;
        if (has_mult) {
            if (buf_add(&r->marks, &q, sizeof q) < 0) return -1;
        } else if (!grouped && !fraction && len == 4) {
            int year = (s[i] - '0') * 1000 + (s[i + 1] - '0') * 100 + (s[i + 2] - '0') * 10 + (s[i + 3] - '0');
            if (year >= 1900 && year <= 2099) {
                i = end;
                continue;
            }
        }
        /* float(digits.replace(",", "")): Python's own parser, the same rounding. */
        Buf tmp = {0};
        char *p = digits;
        if (len + 1 > sizeof digits) {
            if (buf_reserve(&tmp, len + 1) < 0) return -1;
            p = tmp.data;
        }
        size_t k = 0;
        for (size_t x = i; x < end; x++)
            if (s[x] != ',') p[k++] = (char)s[x];
        p[k] = 0;
        double v = PyOS_string_to_double(p, NULL, NULL);
        buf_free(&tmp);
        if (v == -1.0 && PyErr_Occurred()) return -1;
        v *= mult;
        if (v > best) best = v;
        i = has_mult ? e : end;
    }
    /* Number words: every run of word characters that is one, but a multiplier of a number. */
    size_t nmarks = r->marks.len / sizeof(size_t);
    const size_t *marks = (const size_t *)r->marks.data;
    const Span *runs = (const Span *)r->runs.data;
    for (size_t k = 0; k < r->runs.len / sizeof(Span); k++) {
        size_t i = runs[k].start, j = runs[k].end;
        /* skipped: a run no number word can be (length, first letter), or the multiplier of a number */
        int skip = j - i < r->numword_min || j - i > r->numword_max || s[i] >= 0x100 || !r->numword_first[lower(s[i])];
        for (size_t x = 0; !skip && x < nmarks; x++) skip = marks[x] == i;
        if (!skip) {
            Entry *e = lookup(r, &r->small, s + i, j - i, 1);
            if (!e && PyErr_Occurred()) return -1;
            if (e && (e->flags & F_NUMWORD) && val(&r->small, e, 0) > best) best = val(&r->small, e, 0);
        }
    }
    *best_out = best;
    return 0;
}

/* Whether s[p:p+n] is the literal (ASCII) and a word boundary follows it. */
static int word_at(const ch_t *s, size_t len, size_t p, const char *lit, size_t n) {
    if (p + n > len) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[p + i] != (ch_t)(unsigned char)lit[i]) return 0;
    return p + n == len || !is_word(s[p + n]);
}

/* The word tokens (WORD_TOKEN: [a-z0-9]+(?:'[a-z]+)?) of the cleaned text as spans into r->tokens. */
static int word_tokens(Reader *r, const ch_t *s, size_t n) {
    r->tokens.len = 0;
    for (size_t i = 0; i < n;) {
        if (!(is_lower(s[i]) || is_digit(s[i]))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && (is_lower(s[j]) || is_digit(s[j]))) j++;
        if (j + 1 < n && s[j] == '\'' && is_lower(s[j + 1])) {
            j += 2;
            while (j < n && is_lower(s[j])) j++;
        }
        Span sp = {i, j};
        if (buf_add(&r->tokens, &sp, sizeof sp) < 0) return -1;
        i = j;
    }
    return 0;
}

/* content_stats and the magnitude columns of s[0:n] into out[N_STATS]; the token vector rows onto ids. */
static int read_clean(Reader *r, const ch_t *s, size_t n, double *out, Buf *ids, Buf *cols, int64_t row, Buf *rows) {
    r->runs.len = 0; /* the runs of word characters (\w+): number words, and the tokens of word n-grams (\w\w+) */
    for (size_t i = 0; i < n;) {
        if (!is_word(s[i])) {
            i++;
            continue;
        }
        Span sp = {i, i + 1};
        while (sp.end < n && is_word(s[sp.end])) sp.end++;
        if (buf_add(&r->runs, &sp, sizeof sp) < 0) return -1;
        i = sp.end;
    }
    size_t words = n ? 1 : 0;
    int digit = 0, question = 0;
    for (size_t i = 0; i < n; i++) {
        words += s[i] == ' ';
        digit |= is_digit(s[i]);
        question |= s[i] == '?';
    }
    int leading = 0;
    if (n && is_digit(s[0])) {
        size_t j = 0;
        while (j < n && is_digit(s[j])) j++;
        leading = j == n || !is_word(s[j]);
    }
    int you = 0; /* \byou(r|'re|rs)?\b */
    for (size_t p = 0; !you && p + 3 <= n; p++) {
        if (s[p] != 'y' || s[p + 1] != 'o' || s[p + 2] != 'u' || (p > 0 && is_word(s[p - 1]))) continue;
        you = word_at(s, n, p + 3, "r", 1) || word_at(s, n, p + 3, "'re", 3) || word_at(s, n, p + 3, "rs", 2) ||
              word_at(s, n, p + 3, "", 0);
    }
    double quantity;
    if (largest_quantity(r, s, n, &quantity) < 0) return -1;
    size_t names = 0; /* \b(?:xname|xprominent)\b */
    for (size_t p = 0; p < n; p++)
        if ((p == 0 || !is_word(s[p - 1])) && s[p] == 'x' &&
            (word_at(s, n, p, NAME_TOKEN, sizeof NAME_TOKEN - 1) || word_at(s, n, p, PROMINENT_TOKEN, sizeof PROMINENT_TOKEN - 1))) names++;
    out[0] = log1p((double)n);
    out[1] = (double)(words < 40 ? words : 40);
    out[2] = digit;
    out[3] = leading;
    out[4] = question;
    out[5] = you;
    out[6] = log10(1.0 + (quantity < 1e13 ? quantity : 1e13));
    out[7] = (double)names;
    /* The size axis (mean), the harm axis (max) and the token vector rows, over the same word tokens. */
    if (word_tokens(r, s, n) < 0) return -1;
    const Span *tok = (const Span *)r->tokens.data;
    size_t nt = r->tokens.len / sizeof(Span);
    r->keybuf.len = r->keys.len = r->found.len = 0;
    for (size_t k = 0; k < nt; k++)
        if (add_key(r, &r->keys, s + tok[k].start, tok[k].end - tok[k].start, 0) < 0) return -1;
    if (buf_reserve(&r->found, nt * sizeof(Entry *) + 1) < 0) return -1;
    Entry **found = (Entry **)r->found.data; /* each word token's entry: its unigram when the two agree */
    double scale = 0.0, harm = 0.0;
    size_t nscale = 0, nharm = 0;
    for (size_t k = 0; k < nt; k++) {
        Entry *e = found[k] = find_key(r, (const Key *)r->keys.data + k);
        if (!e) continue;
        if (r->has_scale && (e->flags & F_SCALE)) {
            scale += val(&r->table, e, 1);
            nscale++;
        }
        if (r->has_harm && (e->flags & F_HARM) && (nharm++ == 0 || val(&r->table, e, 0) > harm)) harm = val(&r->table, e, 0);
        if (r->has_embed && e->emb >= 0) {
            int64_t id = e->emb;
            if (buf_add(ids, &id, sizeof id) < 0) return -1;
        }
    }
    double toll = 0.0;
    if (out[6] > 0.0) {
        double x = (harm - r->harm_centre) / r->width;
        x = x < 50.0 ? x : 50.0;
        x = x > -50.0 ? x : -50.0;
        double gate = 1.0 / (1.0 + exp(-x));
        toll = gate * ((out[6] < r->cap ? out[6] : r->cap) - r->neutral);
    }
    out[8] = toll;
    out[9] = nscale ? scale / (double)nscale : 0.0;
    if (r->ngram_hi == 0) return 0;
    /* Word n-grams: tokens \w\w+ (the text is lower case), n-grams joined by one space. A unigram that spans the
     * same characters as a word token above is that token's entry; the others are looked up, prefetched together. */
    size_t nword = nt, w = 0;
    r->words.len = 0; /* the cleaner's words are done with: the n-gram tokens' spans go there */
    const Span *runs = (const Span *)r->runs.data;
    for (size_t k = 0; k < r->runs.len / sizeof(Span); k++)
        if (runs[k].end - runs[k].start >= 2 && buf_add(&r->words, &runs[k], sizeof(Span)) < 0) return -1;
    const Span *spans = (const Span *)r->words.data;
    size_t ng = r->words.len / sizeof(Span);
    r->keys.len = 0; /* the word tokens' keys are done with (found[] holds their entries) */
    for (int g = r->ngram_lo; g <= r->ngram_hi; g++) {
        for (size_t k = 0; k + (size_t)g <= ng; k++) {
            if (g == 1) {
                while (w < nword && tok[w].start < spans[k].start) w++;
                if (w < nword && tok[w].start == spans[k].start && tok[w].end == spans[k].end) {
                    Key mark = {SIZE_MAX, w, 0}; /* found[w] */
                    if (buf_add(&r->keys, &mark, sizeof mark) < 0) return -1;
                    continue;
                }
            }
            size_t from = spans[k].start, to = spans[k + g - 1].end;
            /* the n-gram: its tokens joined by one space (the text between them holds other characters) */
            if (buf_reserve(&r->keybuf, 4 * (to - from) + 1) < 0) return -1;
            Key key = {r->keybuf.len, 0, 0};
            for (int x = 0; x < g; x++) {
                if (x) r->keybuf.data[r->keybuf.len++] = ' ';
                r->keybuf.len += utf8(s + spans[k + x].start, spans[k + x].end - spans[k + x].start, 0,
                                      r->keybuf.data + r->keybuf.len);
            }
            key.len = r->keybuf.len - key.off;
            key.hash = hash_key(r->keybuf.data + key.off, key.len);
            prefetch(&r->table, key.hash);
            if (buf_add(&r->keys, &key, sizeof key) < 0) return -1;
        }
    }
    const Key *keys = (const Key *)r->keys.data;
    size_t nk = r->keys.len / sizeof(Key);
    for (size_t k = 0; k < nk; k++) {
        Entry *e = keys[k].off == SIZE_MAX ? found[keys[k].len] : find_key(r, &keys[k]);
        if (e && e->col >= 0) {
            int64_t c = e->col;
            if (buf_add(cols, &c, sizeof c) < 0) return -1;
            if (rows && buf_add(rows, &row, sizeof row) < 0) return -1;
        }
    }
    return 0;
}

/* The code points of str into r->text; 0 if some character is not readable here, 1 if read, -1 on error. */
static int load_text(Reader *r, PyObject *str, size_t *n_out) {
    if (!PyUnicode_Check(str)) {
        PyErr_SetString(PyExc_TypeError, "texts must be str");
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    int kind = PyUnicode_KIND(str);
    const void *data = PyUnicode_DATA(str);
    r->text.len = 0;
    if (buf_reserve(&r->text, ((size_t)n + 1) * sizeof(ch_t)) < 0) return -1;
    ch_t *t = (ch_t *)r->text.data;
    if (PyUnicode_IS_ASCII(str)) { /* most headlines: every character readable */
        const unsigned char *a = data;
        for (Py_ssize_t i = 0; i < n; i++) t[i] = a[i];
        *n_out = (size_t)n;
        return 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        ch_t c = PyUnicode_READ(kind, data, i);
        if (!readable(c)) return 0;
        t[i] = c;
    }
    *n_out = (size_t)n;
    return 1;
}

/* ---- Python methods ------------------------------------------------------------------------------------ */

/* The cleaned text of str into r->clean: its length, NOT_READ when some character is not readable here, -1 on error. */
#define NOT_READ (-2)
static Py_ssize_t load_and_clean(Reader *r, PyObject *str) {
    size_t n;
    int ok = load_text(r, str, &n);
    return ok <= 0 ? (ok < 0 ? -1 : NOT_READ) : clean_text(r, (ch_t *)r->text.data, n);
}

static PyObject *Reader_clean(Reader *r, PyObject *text) {
    Py_ssize_t m = load_and_clean(r, text);
    if (m == NOT_READ) Py_RETURN_NONE;
    return m < 0 ? NULL : PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, r->clean.data, m);
}

static PyObject *list_of_int64(const Buf *b) {
    size_t n = b->len / sizeof(int64_t);
    PyObject *out = PyList_New((Py_ssize_t)n);
    if (!out) return NULL;
    const int64_t *v = (const int64_t *)b->data;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (!x) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, x);
    }
    return out;
}

/* read_one(text) -> None (not readable here) or (n-gram columns, token vector rows, statistics) as lists. */
static PyObject *Reader_read_one(Reader *r, PyObject *text) {
    Py_ssize_t m = load_and_clean(r, text);
    if (m == NOT_READ) Py_RETURN_NONE;
    if (m < 0) return NULL;
    Buf ids = {0}, cols = {0};
    double stats[N_STATS];
    PyObject *result = NULL;
    if (read_clean(r, (const ch_t *)r->clean.data, (size_t)m, stats, &ids, &cols, 0, NULL) == 0) {
        PyObject *c = list_of_int64(&cols), *i = list_of_int64(&ids), *s = PyList_New(N_STATS);
        int ok = c && i && s;
        for (int k = 0; ok && k < N_STATS; k++) {
            PyObject *v = PyFloat_FromDouble(stats[k]);
            if (v) PyList_SET_ITEM(s, k, v); else ok = 0;
        }
        if (ok) result = PyTuple_Pack(3, c, i, s);
        Py_XDECREF(c);
        Py_XDECREF(i);
        Py_XDECREF(s);
    }
    buf_free(&ids);
    buf_free(&cols);
    return result;
}

/* read(texts) -> (fallback row indices, n-gram rows, n-gram columns, token vector rows, tokens per text,
 * statistics): the last five as bytes of int64 / float64 (statistics: N_STATS per text, row-major). A text not
 * readable here has no n-grams, no tokens and zero statistics; its index is in the first list. */
static PyObject *Reader_read(Reader *r, PyObject *texts) {
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Buf rows = {0}, cols = {0}, ids = {0}, lens = {0}, stats = {0};
    PyObject *fallback = PyList_New(0), *result = NULL;
    if (!fallback || buf_reserve(&stats, (size_t)count * N_STATS * sizeof(double) + 1) < 0 ||
        buf_reserve(&lens, (size_t)count * sizeof(int64_t) + 1) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        double *out = (double *)(stats.data + (size_t)i * N_STATS * sizeof(double));
        size_t before = ids.len;
        Py_ssize_t m = load_and_clean(r, items[i]);
        if (m == -1) goto done;
        if (m == NOT_READ) {
            memset(out, 0, N_STATS * sizeof(double));
            PyObject *idx = PyLong_FromSsize_t(i);
            if (!idx || PyList_Append(fallback, idx) < 0) {
                Py_XDECREF(idx);
                goto done;
            }
            Py_DECREF(idx);
        } else if (read_clean(r, (const ch_t *)r->clean.data, (size_t)m, out, &ids, &cols, i, &rows) < 0) {
            goto done;
        }
        int64_t k = (int64_t)((ids.len - before) / sizeof(int64_t));
        memcpy(lens.data + (size_t)i * sizeof k, &k, sizeof k);
    }
    stats.len = (size_t)count * N_STATS * sizeof(double);
    lens.len = (size_t)count * sizeof(int64_t);
    result = Py_BuildValue("(Oy#y#y#y#y#)", fallback, rows.data ? rows.data : "", (Py_ssize_t)rows.len,
                           cols.data ? cols.data : "", (Py_ssize_t)cols.len, ids.data ? ids.data : "", (Py_ssize_t)ids.len,
                           lens.data ? lens.data : "", (Py_ssize_t)lens.len, stats.data ? stats.data : "", (Py_ssize_t)stats.len);
done:
    Py_DECREF(seq);
    Py_XDECREF(fallback);
    buf_free(&rows);
    buf_free(&cols);
    buf_free(&ids);
    buf_free(&lens);
    buf_free(&stats);
    return result;
}

/* Adds to t the keys of an iterable of str (a set) with a flag, or of a dict {str: value}: what 0 an n-gram column,
 * 1 a token vector row, 2 or 3 the first or second of the entry's two numbers. An empty key is skipped (no word is
 * empty, nothing looks it up). */
static int add_keys(Table *t, PyObject *obj, unsigned flag, int what) {
    if (obj == Py_None) return 0;
    int is_dict = PyDict_Check(obj);
    PyObject *it = PyObject_GetIter(obj);
    if (!it) return -1;
    PyObject *key;
    int rc = 0;
    while (rc == 0 && (key = PyIter_Next(it))) {
        Py_ssize_t n = 0;
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &n) : NULL;
        Entry *e = NULL;
        if (!k) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "lexicon keys must be str");
            rc = -1;
        } else if (n > 0 && !(e = table_add(t, k, (size_t)n))) {
            rc = -1;
        }
        if (e) {
            e->flags |= flag;
            PyObject *value = is_dict ? PyDict_GetItemWithError(obj, key) : NULL;
            if (is_dict && !value) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "lexicon changed while read");
                rc = -1;
            } else if (is_dict && what <= 1) { /* an int column / row; a negative one is a marker (compiled.py's
                                                  row break), looked up as absent */
                long long v = PyLong_AsLongLong(value);
                if (v == -1 && PyErr_Occurred()) {
                    rc = -1;
                } else if (v > INT32_MAX) {
                    PyErr_SetString(PyExc_ValueError, "lexicon index out of range");
                    rc = -1;
                } else if (v >= 0) {
                    if (what == 0) e->col = (int32_t)v; else e->emb = (int32_t)v;
                }
            } else if (is_dict) {
                double v = PyFloat_AsDouble(value);
                double *vals = (v == -1.0 && PyErr_Occurred()) ? NULL : entry_vals(t, e);
                if (!vals) rc = -1;
                else vals[what - 2] = v;
            }
        }
        Py_DECREF(key);
    }
    Py_DECREF(it);
    return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

static int Reader_init(Reader *r, PyObject *args, PyObject *kw) {
    static char *names[] = {"proper", "common", "prominent", "kickers", "join_runs", "share", "number_words",
                            "multipliers", "ngrams", "ngram_range", "embed", "harm", "scale", "harm_centre",
                            "neutral", "cap", "width", NULL};
    PyObject *proper, *common, *prominent, *kickers, *number_words, *multipliers, *ngrams = Py_None, *embed = Py_None,
                                                                                  *harm = Py_None, *scale = Py_None;
    int join_runs, lo = 0, hi = 0;
    double share, centre = 0.0, neutral = 0.0, cap = 0.0, width = 1.0;
    if (r->table.count || r->small.count) { /* its tables are filled once: a second __init__ would only add to them */
        PyErr_SetString(PyExc_RuntimeError, "a Reader is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOpdOO|O(ii)OOOdddd", names, &proper, &common, &prominent, &kickers,
                                     &join_runs, &share, &number_words, &multipliers, &ngrams, &lo, &hi, &embed,
                                     &harm, &scale, &centre, &neutral, &cap, &width))
        return -1;
    if (ngrams != Py_None && (lo < 1 || hi < lo || hi > 8)) {
        PyErr_SetString(PyExc_ValueError, "ngram_range must be 1 <= lo <= hi <= 8");
        return -1;
    }
    if (!PyDict_Check(number_words) || !PyDict_Check(multipliers)) {
        PyErr_SetString(PyExc_TypeError, "number_words and multipliers must be dicts");
        return -1;
    }
    r->join_runs = join_runs;
    r->share = share;
    r->ngram_lo = ngrams == Py_None ? 0 : lo;
    r->ngram_hi = ngrams == Py_None ? 0 : hi;
    r->has_embed = embed != Py_None;
    r->has_harm = harm != Py_None;
    r->has_scale = scale != Py_None;
    r->harm_centre = centre;
    r->neutral = neutral;
    r->cap = cap;
    r->width = width;
    Table *t = &r->table, *small = &r->small;
    r->numword_min = SIZE_MAX;
    r->numword_max = 0;
    memset(r->numword_first, 0, sizeof r->numword_first);
    PyObject *word, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(number_words, &pos, &word, &value)) { /* which runs of word characters can be one */
        Py_ssize_t len = PyUnicode_Check(word) ? PyUnicode_GET_LENGTH(word) : 0;
        if (len <= 0) continue;
        ch_t c = PyUnicode_READ_CHAR(word, 0);
        if (c >= 0x100) { /* a word the filter cannot hold: every run is looked up */
            memset(r->numword_first, 1, sizeof r->numword_first);
        } else {
            r->numword_first[lower(c)] = 1;
        }
        if ((size_t)len < r->numword_min) r->numword_min = (size_t)len;
        if ((size_t)len > r->numword_max) r->numword_max = (size_t)len;
    }
    if (add_keys(t, proper, F_PROPER, -1) < 0 || add_keys(t, common, F_COMMON, -1) < 0 ||
        add_keys(t, prominent, F_PROMINENT, -1) < 0 || add_keys(small, kickers, F_KICKER, -1) < 0 ||
        add_keys(small, number_words, F_NUMWORD, 2) < 0 || add_keys(small, multipliers, F_MULT, 3) < 0 ||
        add_keys(t, ngrams, 0, 0) < 0 || add_keys(t, embed, 0, 1) < 0 || add_keys(t, harm, F_HARM, 2) < 0 ||
        add_keys(t, scale, F_SCALE, 3) < 0)
        return -1;
    return 0;
}

static void Reader_dealloc(Reader *r) {
    free(r->table.slots);
    buf_free(&r->table.arena);
    buf_free(&r->table.vals);
    free(r->small.slots);
    buf_free(&r->small.arena);
    buf_free(&r->small.vals);
    buf_free(&r->text);
    buf_free(&r->clean);
    buf_free(&r->keybuf);
    buf_free(&r->keys);
    buf_free(&r->found);
    buf_free(&r->words);
    buf_free(&r->acts);
    buf_free(&r->tokens);
    buf_free(&r->marks);
    buf_free(&r->runs);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* ---- one headline's shares, for the compiled scorer's one-record path ----------------------------------------- */

/* A C-contiguous buffer of obj holding items of the format's kind ('f' float32, 'd' float64), or -1 with an error. */
static int get_buffer(PyObject *obj, Py_buffer *view, char kind, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (f[0] != kind || f[1] || view->itemsize != (kind == 'f' ? 4 : 8)) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous buffer of %s", what, kind == 'f' ? "float32" : "float64");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int cmp_long(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* terms_share(cols, packed, tf, idf, f32, l2): compiled._TextTerms.share_of_columns step for step (the same doubles,
 * rounded to float32 where it rounds with array("f"); its sums are Python 3.11's sum(), one addition after another,
 * which 3.12 replaced by a compensated sum); None when an n-gram repeats more often than tf has counts. */
static PyObject *terms_share(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cols_obj, *packed_obj, *tf_obj, *idf_obj;
    int f32, l2;
    if (!PyArg_ParseTuple(args, "OOOOpp", &cols_obj, &packed_obj, &tf_obj, &idf_obj, &f32, &l2)) return NULL;
    PyObject *seq = PySequence_Fast(cols_obj, "cols must be a sequence of int");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer packed = {0}, tf = {0}, idf = {0};
    int have_idf = idf_obj != Py_None;
    long long small[64];
    long long *js = n <= 64 ? small : PyMem_Malloc((size_t)n * sizeof(long long));
    PyObject *result = NULL;
    if (!js) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_buffer(packed_obj, &packed, 'd', "packed") < 0) goto done;
    if (get_buffer(tf_obj, &tf, 'd', "tf") < 0) goto done;
    if (have_idf && get_buffer(idf_obj, &idf, 'd', "idf") < 0) goto done;
    const double *pk = packed.buf, *tfv = tf.buf, *idfv = have_idf ? idf.buf : NULL;
    Py_ssize_t width = packed.len / (Py_ssize_t)sizeof(double) / 3, ntf = tf.len / (Py_ssize_t)sizeof(double);
    for (Py_ssize_t i = 0; i < n; i++) {
        js[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (js[i] == -1 && PyErr_Occurred()) goto done;
        if (js[i] < 0 || js[i] >= width || (have_idf && js[i] >= idf.len / (Py_ssize_t)sizeof(double))) {
            PyErr_SetString(PyExc_IndexError, "column out of range");
            goto done;
        }
    }
    if (n == 0) {
        result = PyFloat_FromDouble(0.0);
        goto done;
    }
    qsort(js, (size_t)n, sizeof(long long), cmp_long); /* the vectorizer's order: columns ascending */
    /* each distinct column once, its count beside it: values and squares of a term met once from the table */
    Py_ssize_t m = 0;
    double vsmall[64], qsmall[64];
    long long csmall[64];
    double *values = n <= 64 ? vsmall : PyMem_Malloc((size_t)n * sizeof(double));
    double *squares = n <= 64 ? qsmall : PyMem_Malloc((size_t)n * sizeof(double));
    long long *counts = n <= 64 ? csmall : PyMem_Malloc((size_t)n * sizeof(long long));
    if (!values || !squares || !counts) {
        PyErr_NoMemory();
        goto free_more;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (m && js[m - 1] == js[i]) {
            counts[m - 1]++;
            continue;
        }
        js[m] = js[i];
        counts[m] = 1;
        values[m] = pk[3 * js[m]];
        squares[m] = pk[3 * js[m] + 1];
        m++;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        if (counts[i] == 1) continue;
        if (counts[i] >= ntf) { /* counted beyond the table: Python computes it with numpy */
            result = Py_NewRef(Py_None);
            goto free_more;
        }
        double v = have_idf ? tfv[counts[i]] * idfv[js[i]] : tfv[counts[i]];
        if (f32) v = (double)(float)v;
        values[i] = v;
        squares[i] = f32 ? (double)(float)(v * v) : v * v;
    }
    if (l2) {
        double sum = 0.0;
        for (Py_ssize_t i = 0; i < m; i++) sum += squares[i];
        double norm = sqrt(sum);
        if (norm != 0.0)
            for (Py_ssize_t i = 0; i < m; i++) values[i] = f32 ? (double)(float)(values[i] / norm) : values[i] / norm;
    }
    double total = 0.0;
    for (Py_ssize_t i = 0; i < m; i++) total += values[i] * pk[3 * js[i] + 2];
    result = PyFloat_FromDouble(total);
free_more:
    if (n > 64) {
        PyMem_Free(values);
        PyMem_Free(squares);
        PyMem_Free(counts);
    }
done:
    if (js && js != small) PyMem_Free(js);
    if (packed.obj) PyBuffer_Release(&packed);
    if (tf.obj) PyBuffer_Release(&tf);
    if (idf.obj) PyBuffer_Release(&idf);
    Py_DECREF(seq);
    return result;
}

/* numpy's pairwise sum of n float32 (FLOAT_pairwise_sum in numpy/_core/src/umath/loops_utils.h.src): eight
 * accumulators over blocks of eight, combined as a tree, the rest added one by one; halves above 128. */
static float pairwise_f32(const float *a, size_t n) {
    if (n < 8) {
        float res = 0.f;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        float r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_f32(a, n2) + pairwise_f32(a + n2, n - n2);
}

/* embed_share(ids, vectors, coef, weight): compiled._Semantic.share_of_ids: the float32 sum of the rows in token
 * order, its norm as np.add.reduce computes it (numpy's pairwise sum of the squares), the float32 row times the
 * coefficients summed in double. */
static PyObject *embed_share(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ids_obj, *vec_obj, *coef_obj;
    float weight;
    if (!PyArg_ParseTuple(args, "OOOf", &ids_obj, &vec_obj, &coef_obj, &weight)) return NULL;
    PyObject *seq = PySequence_Fast(ids_obj, "ids must be a sequence of int");
    if (!seq) return NULL;
    Py_buffer vec = {0}, coef = {0};
    PyObject *result = NULL;
    float *total = NULL;
    if (get_buffer(vec_obj, &vec, 'f', "vectors") < 0 || get_buffer(coef_obj, &coef, 'd', "coef") < 0) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), dim = coef.len / (Py_ssize_t)sizeof(double);
    if (vec.ndim != 2 || vec.shape[1] != dim || dim < 1) {
        PyErr_SetString(PyExc_ValueError, "vectors must be 2-D with one column per coefficient");
        goto done;
    }
    if (n == 0) {
        result = PyFloat_FromDouble(0.0);
        goto done;
    }
    const float *v = vec.buf;
    const double *c = coef.buf;
    total = PyMem_Malloc(2 * (size_t)dim * sizeof(float));
    if (!total) {
        PyErr_NoMemory();
        goto done;
    }
    float *squares = total + dim;
    for (Py_ssize_t t = 0; t < n; t++) {
        long long id = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, t));
        if (id == -1 && PyErr_Occurred()) goto done;
        if (id < 0 || id >= vec.shape[0]) {
            PyErr_SetString(PyExc_IndexError, "token row out of range");
            goto done;
        }
        const float *row = v + id * dim;
        for (Py_ssize_t d = 0; d < dim; d++) total[d] = t ? total[d] + row[d] : row[d];
    }
    for (Py_ssize_t d = 0; d < dim; d++) squares[d] = total[d] * total[d];
    float norm = sqrtf(pairwise_f32(squares, (size_t)dim));
    double sum = 0.0;
    for (Py_ssize_t d = 0; d < dim; d++) {
        float x = (norm > 0.f ? total[d] / norm : total[d]) * weight;
        sum += (double)x * c[d];
    }
    result = PyFloat_FromDouble(sum);
done:
    PyMem_Free(total);
    if (vec.obj) PyBuffer_Release(&vec);
    if (coef.obj) PyBuffer_Release(&coef);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef module_methods[] = {
    {"terms_share", terms_share, METH_VARARGS, "One text's share of a TF-IDF part from its n-gram columns."},
    {"embed_share", embed_share, METH_VARARGS, "One text's share of a token-vector part from its token rows."},
    {NULL}};

static PyMethodDef Reader_methods[] = {
    {"clean", (PyCFunction)Reader_clean, METH_O, "HeadlineCleaner.clean of one text, or None if not readable here."},
    {"read_one", (PyCFunction)Reader_read_one, METH_O,
     "(n-gram columns, token vector rows, statistics) of one text, or None if not readable here."},
    {"read", (PyCFunction)Reader_read, METH_O,
     "(fallback indices, n-gram rows, n-gram columns, token vector rows, tokens per text, statistics) of texts."},
    {NULL}};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "iscore._speedups.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A cleaner's, a vectorizer's, an embedder's and the statistics' tables, to read headlines in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "iscore._speedups", "C speed-ups for iscore.compiled.", -1, module_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    ch_t beyond[N_EXTRA + 0x40];
    size_t k = 0;
    for (ch_t c = 0x80; c < 0x100; c++)
        if (readable(c)) beyond[k++] = c;
    for (size_t i = 0; i < N_EXTRA; i++)
        if (EXTRA[i] >= 0x100) beyond[k++] = EXTRA[i];
    PyObject *extra = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, beyond, (Py_ssize_t)k);
    if (!extra || PyModule_AddObject(m, "READABLE_BEYOND_ASCII", extra) < 0) {
        Py_XDECREF(extra);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
