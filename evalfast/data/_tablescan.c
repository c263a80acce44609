/* evalfast.data._tablescan: one pass over a TREC qrels or run file (or BEIR qrels TSV) already in memory.
 *
 * The native half of evalfast.data.trec_parse, which holds the rules and a numpy reader that gives the same answers
 * (tests run both on the same files): fields are separated by C whitespace and a line ends at \n; blank lines and
 * lines whose first field starts with '#' are skipped; ids are numbered in order of first appearance after the
 * known ones; a score is read only when it is plain decimal (or inf / infinity) and a relevance only when it is
 * [+-] and at most 18 digits, exactly as strtod / atol read them.
 *
 * Ids are numbered in hash tables that hold each name's first 16 bytes, so that most lookups touch one cache line;
 * lines are tokenised a batch ahead of their lookups, whose slots' tags are prefetched meanwhile. A run scored against
 * qrels may look its documents up among the qrels' only (known_docs_only): most of a run's documents are unjudged,
 * and numbering them would fill a table many times larger; each query's documents are then checked for a repeat
 * in a small table of their own, which needs each query's lines together (the scan says when they are not).
 * (Two threads, each with its tables, then merged, were measured no faster on two cores, and took 115 MB more on
 * 2 M lines.) The text may be a read-only mapping of the file: nothing is read past its end, which is a newline.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_FIELDS 16         /* the last field a layout may pick is field MAX_FIELDS - 1 (0-based) */
#define MAX_PARTS 16           /* threads of one scan */
#define BATCH 32              /* lines tokenised ahead of their lookups, so the table's tags can be fetched early */
#define EXACT_DIGITS 15       /* m * 10^p is one correctly rounded operation for m < 10^15 and |p| <= 22 */
#define EXACT_POWER 22
#define MAX_INTEGER_DIGITS 18 /* below 2^63, so atol reads it exactly */
#define EXPONENT_CAP (1 << 20)

static const double POWERS[EXACT_POWER + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Byte classes: SEPARATOR for C whitespace (a newline included), CONTROL for the other ASCII control characters,
 * which belong to their field but to no id. */
enum { SEPARATOR = 1, CONTROL = 2 };
static unsigned char CLASSES[256];

static void init_classes(void) {
    for (int c = 0; c < 0x20; c++) CLASSES[c] = CONTROL;
    CLASSES[0x7F] = CONTROL;
    CLASSES[' '] = CLASSES['\t'] = CLASSES['\n'] = CLASSES['\r'] = CLASSES['\v'] = CLASSES['\f'] = SEPARATOR;
}
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* --- ids ------------------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t hash, word[2]; /* the name's hash (its length included) and first 16 bytes, zero past its end */
} Key;

typedef struct {
    uint64_t hash, word[2]; /* the name's Key */
    uint32_t id;            /* id + 1; 0: an empty slot */
    uint32_t length;        /* capped at UINT32_MAX: longer names are compared byte for byte */
} Slot;

typedef struct {
    Slot *slots;
    unsigned char *tags; /* per slot: 0 empty, else tag_of(its hash); probed before the slot, which they mostly spare */
    size_t mask;
    int64_t count, capacity;
    const unsigned char **at;            /* per id: where its name is (the text, or the known names' buffer) */
    int64_t *length, *first_row;         /* per id */
} Names;

/* A slot's tag: seven bits of the hash that its index does not use (tables have far fewer than 2^57 slots), and
 * a set top bit. The tags of a table of 512 Ki slots take 512 KiB, which stays in a core's cache: a lookup of a
 * name not in the table, most of a run's documents, seldom reads a slot. */
static inline unsigned char tag_of(uint64_t hash) { return (unsigned char)(0x80 | (hash >> 57)); }

static inline uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The n < 8 bytes at p as a word, zero past them; the 8 bytes from p may be read. */
static inline uint64_t partial_word(const unsigned char *p, int64_t n) {
    uint64_t word;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&word, p, 8);
    return n ? word & (~0ULL >> (64 - 8 * n)) : 0;
#else
    word = 0;
    memcpy(&word, p, (size_t)n);
    return word;
#endif
}

static inline uint64_t load_word(const unsigned char *p, int64_t n) {
    uint64_t word;
    if (n >= 8) {
        memcpy(&word, p, 8);
        return word;
    }
    return n > 0 ? partial_word(p, n) : 0;
}

/* The n < 8 bytes at p as a word, zero past them, reading nothing past them. */
static inline uint64_t copied_word(const unsigned char *p, int64_t n) {
    uint64_t word = 0;
    if (n > 0) memcpy(&word, p, (size_t)(n < 8 ? n : 8));
    return word;
}

/* The key of the n bytes at p, nothing read at or past ``limit`` (the buffer's end): whole words are loaded, and
 * masked, where the buffer has room past the name; near its end, only the name's bytes are copied. Both give the
 * same words. */
static inline Key key_of(const unsigned char *p, int64_t n, const unsigned char *limit) {
    int room = limit - p >= (n > 16 ? n : 16) + 8;
    uint64_t (*word)(const unsigned char *, int64_t) = room ? load_word : copied_word;
    Key key = {(uint64_t)n * 0x9E3779B97F4A7C15ULL, {word(p, n), n > 8 ? word(p + 8, n - 8) : 0}};
    key.hash = mix(mix(key.hash ^ key.word[0]) ^ key.word[1]);
    for (int64_t i = 16; i < n; i += 8) key.hash = mix(key.hash ^ word(p + i, n - i));
    return key;
}

/* Zeroed memory (a table's empty tags), written before it is read: a page of calloc's, read first, maps the shared
 * zero page and faults again, flushing every thread's TLB, at its first write. Called through a volatile pointer, the memset is
 * not folded into a calloc. */
static void *(*volatile zero_fill)(void *, int, size_t) = memset;

static void *zeroed(size_t bytes) {
    void *block = malloc(bytes);
    if (block) zero_fill(block, 0, bytes);
    return block;
}

static int names_init(Names *names, int64_t expected) {
    size_t size = 1024;
    while (size < (size_t)expected * 2) size <<= 1;
    names->mask = size - 1;
    names->slots = malloc(size * sizeof(Slot));
    names->tags = zeroed(size);
    names->capacity = 1024;
    names->at = malloc(names->capacity * sizeof(*names->at));
    names->length = malloc(names->capacity * sizeof(int64_t));
    names->first_row = malloc(names->capacity * sizeof(int64_t));
    return names->slots && names->tags && names->at && names->length && names->first_row ? 0 : -1;
}

static void names_free(Names *names) {
    free(names->slots);
    free(names->tags);
    free(names->at);
    free(names->length);
    free(names->first_row);
    memset(names, 0, sizeof *names);
}

static int grow_column(int64_t **column, int64_t capacity) {
    int64_t *grown = realloc(*column, capacity * sizeof(int64_t));
    if (!grown) return -1;
    *column = grown;
    return 0;
}

/* Room for one more id: the columns doubled when full, the table when half full. */
static int names_make_room(Names *names) {
    if (names->count == names->capacity) {
        int64_t capacity = names->capacity * 2;
        const unsigned char **at = realloc(names->at, capacity * sizeof(*at));
        if (!at) return -1;
        names->at = at;
        if (grow_column(&names->length, capacity) ||
            grow_column(&names->first_row, capacity))
            return -1;
        names->capacity = capacity;
    }
    if ((size_t)names->count * 2 < names->mask) return 0;
    size_t size = (names->mask + 1) * 2;
    Slot *slots = malloc(size * sizeof(Slot));
    unsigned char *tags = zeroed(size);
    if (!slots || !tags) {
        free(slots);
        free(tags);
        return -1;
    }
    for (size_t i = 0; i <= names->mask; i++) {
        if (!names->tags[i]) continue;
        size_t j = names->slots[i].hash & (size - 1);
        while (tags[j]) j = (j + 1) & (size - 1);
        slots[j] = names->slots[i], tags[j] = names->tags[i];
    }
    free(names->slots);
    free(names->tags);
    names->slots = slots, names->tags = tags;
    names->mask = size - 1;
    return 0;
}

static inline int same_key(const Key *a, const Key *b) {
    return a->hash == b->hash && a->word[0] == b->word[0] && a->word[1] == b->word[1];
}

/* Whether the id's name is the n bytes at p, whose key is given: the key holds names of up to 16 bytes whole. */
static inline int same_name(const Names *names, int64_t id, const Key *id_key, uint32_t id_length, const Key *key,
                            const unsigned char *p, int64_t n) {
    if (!same_key(id_key, key)) return 0;
    if (n <= 16) return id_length == n;
    return names->length[id] == n && memcmp(names->at[id], p, (size_t)n) == 0;
}

static inline uint32_t capped_length(int64_t n) { return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n; }

/* The id of the n bytes at p, whose key is given, or -1 when they have none. */
static int64_t names_find(Names *names, const Key *key, const unsigned char *p, int64_t n) {
    unsigned char tag = tag_of(key->hash);
    for (size_t i = key->hash & names->mask; names->tags[i]; i = (i + 1) & names->mask) {
        if (names->tags[i] != tag) continue;
        const Slot *slot = &names->slots[i];
        Key slot_key = {slot->hash, {slot->word[0], slot->word[1]}};
        if (same_name(names, slot->id - 1, &slot_key, slot->length, key, p, n)) return slot->id - 1;
    }
    return -1;
}

/* The id of the n bytes at p, a new one (first seen at ``row``) when they have none; -1 when out of memory. */
static int64_t names_id(Names *names, const Key *key, const unsigned char *p, int64_t n, int64_t row) {
    int64_t id = names_find(names, key, p, n);
    if (id >= 0) return id;
    if (names->count >= UINT32_MAX - 1 || names_make_room(names) < 0) return -1;
    id = names->count++;
    names->at[id] = p, names->length[id] = n, names->first_row[id] = row;
    size_t i = key->hash & names->mask;
    while (names->tags[i]) i = (i + 1) & names->mask;
    Slot slot = {key->hash, {key->word[0], key->word[1]}, (uint32_t)(id + 1), capped_length(n)};
    names->slots[i] = slot, names->tags[i] = tag_of(key->hash);
    return id;
}

#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif

/* The slot a lookup of this hash reads first fetched early (its tag was fetched earlier still, by
 * PREFETCH(&tags[...])): when its tag says it may hold the name, or always when new names go there (numbering).
 * Most known names are found in that slot. */
static inline void prefetch_slot(const Names *names, uint64_t hash, int numbering) {
    size_t i = hash & names->mask;
    if (numbering || names->tags[i] == tag_of(hash)) PREFETCH(&names->slots[i]);
}

/* --- numbers -------------------------------------------------------------------------------------------------- */

enum { NUMBER_READ, NUMBER_REFUSED, NUMBER_NEEDS_EXACT_READER };

static int lower_equals(const unsigned char *p, int64_t n, const char *word) {
    for (int64_t i = 0; i < n; i++)
        if (!word[i] || (p[i] | 0x20) != (unsigned char)word[i]) return 0;
    return word[n] == 0;
}

/* NUMBER_READ and *value as strtod reads the field when it is [+-] (digits [. [digits]] | . digits) [(e|E) [+-]
 * digits] and one exact operation reads it, or inf / infinity (any case); NUMBER_NEEDS_EXACT_READER when it has
 * the syntax but more digits or a larger power; else NUMBER_REFUSED. */
static int parse_score(const unsigned char *p, int64_t n, double *value) {
    int64_t sign = n > 0 && (p[0] == '+' || p[0] == '-'), i = sign, digits = 0, fraction = 0, exponent = 0;
    uint64_t mantissa = 0;
    for (; i < n && is_digit(p[i]); i++, digits++) mantissa = mantissa * 10 + (p[i] - '0');
    if (i < n && p[i] == '.') {
        for (i++; i < n && is_digit(p[i]); i++, digits++, fraction++) mantissa = mantissa * 10 + (p[i] - '0');
    }
    int negative = sign && p[0] == '-';
    if (!digits) {
        if (i == sign && (lower_equals(p + sign, n - sign, "inf") || lower_equals(p + sign, n - sign, "infinity"))) {
            *value = negative ? -Py_HUGE_VAL : Py_HUGE_VAL;
            return NUMBER_READ;
        }
        return NUMBER_REFUSED;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        int exponent_negative = 0;
        int64_t exponent_digits = 0;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) exponent_negative = p[i++] == '-';
        for (; i < n && is_digit(p[i]); i++, exponent_digits++) {
            exponent = exponent * 10 + (p[i] - '0');
            if (exponent > EXPONENT_CAP) exponent = EXPONENT_CAP;
        }
        if (!exponent_digits) return NUMBER_REFUSED;
        if (exponent_negative) exponent = -exponent;
    }
    if (i != n) return NUMBER_REFUSED;
    int64_t power = exponent - fraction;
    if (digits > EXACT_DIGITS || power > EXACT_POWER || power < -EXACT_POWER) return NUMBER_NEEDS_EXACT_READER;
    double v = (double)mantissa;
    v = power >= 0 ? v * POWERS[power] : v / POWERS[-power];
    *value = negative ? -v : v;
    return NUMBER_READ;
}

/* NUMBER_READ and *value as atol reads the field when it is [+-] and 1 to 18 digits; else NUMBER_REFUSED. */
static int parse_integer(const unsigned char *p, int64_t n, double *value) {
    int64_t i = n > 0 && (p[0] == '+' || p[0] == '-');
    int64_t digits = n - i, magnitude = 0;
    if (digits < 1 || digits > MAX_INTEGER_DIGITS) return NUMBER_REFUSED;
    for (; i < n; i++) {
        if (!is_digit(p[i])) return NUMBER_REFUSED;
        magnitude = magnitude * 10 + (p[i] - '0');
    }
    *value = (double)(p[0] == '-' ? -magnitude : magnitude);
    return NUMBER_READ;
}

/* --- the scan ---------------------------------------------------------------- */

/* --- the scan ------------------------------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t n_fields, picked[3];
    int more_fields_ok, integers;
} Layout;

typedef struct {
    int64_t row, start, length;
} Field;

typedef struct {
    Key key;
    int64_t row, start, length;
    size_t slot;
} Member;

/* The documents of the query being read, when documents are looked up among the known ones only: the table of ids
 * cannot then tell that a (query, document) pair comes twice. A run lists each query's lines together; ``seen``
 * tells when one does not. */
typedef struct {
    uint32_t *slots; /* member + 1; 0: empty */
    size_t mask;
    Member *members;
    int64_t count, capacity, query;
    unsigned char *seen; /* per query id: whether its lines came before the current query's */
    int64_t seen_capacity;
} Group;

static int group_init(Group *group) {
    group->mask = 255;
    group->slots = calloc(group->mask + 1, sizeof(uint32_t));
    group->capacity = 128;
    group->members = malloc(group->capacity * sizeof(Member));
    group->query = -1;
    return group->slots && group->members ? 0 : -1;
}

static void group_free(Group *group) {
    free(group->slots);
    free(group->members);
    free(group->seen);
    memset(group, 0, sizeof *group);
}

static void group_place(Group *group, int64_t member) {
    size_t i = group->members[member].key.hash & group->mask;
    while (group->slots[i]) i = (i + 1) & group->mask;
    group->slots[i] = (uint32_t)(member + 1);
    group->members[member].slot = i;
}

/* Starts query ``query``'s group; 1 when its lines came before (the run is not grouped by query), -1 out of memory. */
static int group_start(Group *group, int64_t query) {
    for (int64_t m = 0; m < group->count; m++) group->slots[group->members[m].slot] = 0;
    group->count = 0;
    if (group->query >= 0) group->seen[group->query] = 1;
    group->query = query;
    if (query >= group->seen_capacity) {
        int64_t capacity = group->seen_capacity ? group->seen_capacity : 1024;
        while (capacity <= query) capacity *= 2;
        unsigned char *seen = realloc(group->seen, capacity);
        if (!seen) return -1;
        memset(seen + group->seen_capacity, 0, capacity - group->seen_capacity);
        group->seen = seen, group->seen_capacity = capacity;
    }
    return group->seen[query];
}

/* The row where the query's document at ``start`` came first, or -1 when it is new (and now added); -2 out of
 * memory. */
static int64_t group_add(Group *group, const unsigned char *text, const Key *key, int64_t row, int64_t start,
                         int64_t n) {
    for (size_t i = key->hash & group->mask; group->slots[i]; i = (i + 1) & group->mask) {
        const Member *member = &group->members[group->slots[i] - 1];
        if (same_key(&member->key, key) && member->length == n &&
            (n <= 16 || memcmp(text + member->start, text + start, (size_t)n) == 0))
            return member->row;
    }
    if (group->count == group->capacity) {
        Member *members = realloc(group->members, group->capacity * 2 * sizeof(Member));
        if (!members) return -2;
        group->members = members, group->capacity *= 2;
    }
    if ((size_t)(group->count + 1) * 2 > group->mask) {
        size_t size = (group->mask + 1) * 2;
        uint32_t *slots = calloc(size, sizeof(uint32_t));
        if (!slots) return -2;
        free(group->slots);
        group->slots = slots, group->mask = size - 1;
        for (int64_t m = 0; m < group->count; m++) group_place(group, m);
    }
    Member member = {*key, row, start, n, 0};
    group->members[group->count] = member;
    group_place(group, group->count++);
    return -1;
}

typedef struct {
    const unsigned char *text, *limit; /* limit: the text buffer's end */
    Py_ssize_t lo, end;                /* this part's lines: text[lo:end], end after a newline */
    const Layout *layout;
    int known_docs_only; /* documents are looked up among the known ones, not numbered */
    int64_t n_known_docs;
    Names queries, *docs; /* docs: shared by the parts, which only look names up in it (known_docs_only) */
    Group group;
    int64_t last_query;           /* the previous row's query id (-1 before the first row) */
    int64_t *query, *doc, *offset; /* outputs, one per data line; offset: the document field's first byte */
    double *value;
    int64_t rows, lines, lines_before; /* lines: counted from the part's start; lines_before: the text's before it */
    int64_t bad_count_line, bad_count;
    Field bad_number;              /* row -1: none */
    int64_t repeated, repeated_first; /* a row repeating an earlier row's (query, document), and that row; -1: none */
    int grouped;                    /* 0 once a query's lines come after another query's (known_docs_only) */
    Field *exact;                   /* rows whose score the exact reader reads, once the scan is done */
    int64_t n_exact, exact_capacity;
    int out_of_memory;
    unsigned char controls; /* CONTROL when a field holds an ASCII control character */
} Scan;

typedef struct {
    int64_t start[3], length[3];
    Key doc;
} Row;

/* The offset of the next data line's first field from ``pos`` (end when none is left); *line counts the blank and
 * comment lines passed. */
static inline Py_ssize_t next_data_line(const unsigned char *text, Py_ssize_t pos, Py_ssize_t end, int64_t *line) {
    while (pos < end) {
        while (is_blank(text[pos])) pos++;
        if (text[pos] != '\n' && text[pos] != '#') return pos;
        pos = (Py_ssize_t)((const unsigned char *)memchr(text + pos, '\n', (size_t)(end - pos)) - text) + 1;
        ++*line;
    }
    return end;
}

static int note_exact(Scan *scan, int64_t row, int64_t start, int64_t length) {
    if (scan->n_exact == scan->exact_capacity) {
        int64_t capacity = scan->exact_capacity ? scan->exact_capacity * 2 : 64;
        Field *grown = realloc(scan->exact, capacity * sizeof(Field));
        if (!grown) return -1;
        scan->exact = grown, scan->exact_capacity = capacity;
    }
    Field field = {row, start, length};
    scan->exact[scan->n_exact++] = field;
    return 0;
}

/* Tokenises up to BATCH data lines from *pos; how many. Stops early at a line whose fields the layout refuses. */
#if defined(__SSE2__)
/* Bit i of each: whether byte i of the 64 from a line's start is C whitespace, a newline, or at most 0x20 or 0x7f
 * (whitespace or a control character). SSE2 is in every x86-64. */
typedef struct {
    uint64_t separator, newline, stop;
} LineMasks;

static inline LineMasks line_masks(const unsigned char *p) {
    const __m128i space = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), four = _mm_set1_epi8(4),
                  newline = _mm_set1_epi8('\n'), delete = _mm_set1_epi8(0x7f);
    LineMasks masks = {0, 0, 0};
    for (int i = 0; i < 4; i++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(p + 16 * i)), past_tab = _mm_sub_epi8(bytes, tab);
        __m128i separator = _mm_or_si128(_mm_cmpeq_epi8(bytes, space), /* space, or \t \n \v \f \r */
                                         _mm_cmpeq_epi8(_mm_min_epu8(past_tab, four), past_tab));
        __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(bytes, space), bytes), _mm_cmpeq_epi8(bytes, delete));
        masks.separator |= (uint64_t)(unsigned)_mm_movemask_epi8(separator) << (16 * i);
        masks.newline |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newline)) << (16 * i);
        masks.stop |= (uint64_t)(unsigned)_mm_movemask_epi8(stop) << (16 * i);
    }
    return masks;
}
#endif

/* The fields of the line whose first field starts at p: start and length of the first ``keep`` ones, how many
 * (*fields), and where the next line starts. */
static inline Py_ssize_t line_fields(Scan *scan, Py_ssize_t p, Py_ssize_t keep, int64_t *start, int64_t *length,
                                     Py_ssize_t *fields) {
    const unsigned char *text = scan->text;
    Py_ssize_t n = 0;
#if defined(__SSE2__)
    if (scan->limit - (text + p) >= 64) { /* a line of up to 63 bytes: its fields read off masks of its bytes */
        LineMasks masks = line_masks(text + p);
        if (masks.newline) {
            int end_of_line = __builtin_ctzll(masks.newline);
            uint64_t line = (2ULL << end_of_line) - 1, blanks = masks.separator & ~masks.newline;
            if (masks.stop & ~masks.separator & line) scan->controls = CONTROL;
            for (int at = 0; at < end_of_line; n++) { /* at: a field's first byte */
                int end = __builtin_ctzll(masks.separator & (~0ULL << at));
                if (n < keep) start[n] = p + at, length[n] = end - at;
                at = __builtin_ctzll(~blanks & (~0ULL << end)); /* the next field, or the newline */
            }
            *fields = n;
            return p + end_of_line + 1;
        }
    }
#endif
    while (text[p] != '\n') { /* p is at a field's first byte */
        Py_ssize_t q = p;
        unsigned char classes = 0;
        for (; !(CLASSES[text[q]] & SEPARATOR); q++) classes |= CLASSES[text[q]];
        scan->controls |= classes;
        if (n < keep) start[n] = p, length[n] = q - p;
        n++;
        for (p = q; is_blank(text[p]); p++) {
        }
    }
    *fields = n;
    return p + 1;
}

/* Tokenises up to BATCH data lines from *pos; how many. Stops early at a line whose fields the layout refuses. */
static int tokenise(Scan *scan, Py_ssize_t *pos, Row *rows) {
    const unsigned char *text = scan->text;
    const Layout *layout = scan->layout;
    Py_ssize_t last = layout->picked[0];
    for (int k = 1; k < 3; k++)
        if (layout->picked[k] > last) last = layout->picked[k];
    int n = 0;
    while (n < BATCH) {
        Py_ssize_t p = next_data_line(text, *pos, scan->end, &scan->lines);
        if (p >= scan->end) break;
        int64_t start[MAX_FIELDS], length[MAX_FIELDS];
        Py_ssize_t fields;
        *pos = line_fields(scan, p, last + 1, start, length, &fields);
        if (layout->more_fields_ok ? fields < layout->n_fields : fields != layout->n_fields) {
            scan->bad_count_line = scan->lines, scan->bad_count = fields;
            break;
        }
        Row *row = &rows[n++];
        for (int k = 0; k < 3; k++) row->start[k] = start[layout->picked[k]], row->length[k] = length[layout->picked[k]];
        scan->lines++;
        row->doc = key_of(text + row->start[1], row->length[1], scan->limit);
        PREFETCH(&scan->docs->tags[row->doc.hash & scan->docs->mask]);
    }
    return n;
}

/* The document of a row: its id, or (known_docs_only) for one not known, the number of known names + the row,
 * after checking that its query does
 * not list it twice. 0, or -1 out of memory. */
static int document(Scan *scan, const Row *row, int64_t r, int64_t q, int64_t *d) {
    if (!scan->known_docs_only) {
        *d = names_id(scan->docs, &row->doc, scan->text + row->start[1], row->length[1], r);
        return *d < 0 ? -1 : 0;
    }
    *d = names_find(scan->docs, &row->doc, scan->text + row->start[1], row->length[1]);
    if (*d < 0) *d = scan->n_known_docs + r;
    if (q != scan->group.query) {
        int before = group_start(&scan->group, q);
        if (before < 0) return -1;
        scan->grouped = !before;
    }
    if (scan->repeated >= 0) return 0;
    int64_t first = group_add(&scan->group, scan->text, &row->doc, r, row->start[1], row->length[1]);
    if (first == -2) return -1;
    if (first >= 0) scan->repeated = r, scan->repeated_first = first;
    return 0;
}

/* The previous row's query id when this row names the same query (a file's rows come query by query), else -1.
 * (Kept per part: the parts share the documents' table, which lookups leave unchanged.) */
static inline int64_t same_query(const Scan *scan, const unsigned char *name, int64_t n) {
    const Names *queries = &scan->queries;
    int64_t id = scan->last_query;
    if (id < 0 || queries->length[id] != n || memcmp(queries->at[id], name, (size_t)n)) return -1;
    return id;
}

static void *scan_lines(void *argument) {
    Scan *scan = argument;
    Py_ssize_t pos = scan->lo;
    Row rows[BATCH];
    while (scan->bad_count_line < 0 && scan->grouped) {
        int n = tokenise(scan, &pos, rows);
        for (int k = 0; k < n; k++) prefetch_slot(scan->docs, rows[k].doc.hash, !scan->known_docs_only);
        for (int k = 0; k < n && scan->grouped; k++, scan->rows++) {
            const Row *row = &rows[k];
            int64_t r = scan->rows, d;
            const unsigned char *query_name = scan->text + row->start[0];
            int64_t q = same_query(scan, query_name, row->length[0]);
            if (q < 0) {
                Key query = key_of(query_name, row->length[0], scan->limit);
                q = scan->last_query = names_id(&scan->queries, &query, query_name, row->length[0], r);
            }
            if (q < 0 || document(scan, row, r, q, &d) < 0) {
                scan->out_of_memory = 1;
                return NULL;
            }
            scan->query[r] = q, scan->doc[r] = d, scan->offset[r] = row->start[1];
            if (scan->bad_number.row >= 0) continue;
            const unsigned char *number = scan->text + row->start[2];
            int status = (scan->layout->integers ? parse_integer : parse_score)(number, row->length[2], &scan->value[r]);
            if (status == NUMBER_REFUSED) {
                Field bad = {r, row->start[2], row->length[2]};
                scan->bad_number = bad;
            } else if (status == NUMBER_NEEDS_EXACT_READER && note_exact(scan, r, row->start[2], row->length[2]) < 0) {
                scan->out_of_memory = 1;
                return NULL;
            }
        }
        if (n < BATCH) break;
    }
    return NULL;
}

/* Where a part that reaches byte ``from`` ends: after that line and the lines that follow it with the same first
 * field, so that no query's lines are cut apart (a cut elsewhere only costs a scan of the whole text). */
static Py_ssize_t part_end(const unsigned char *text, Py_ssize_t from, Py_ssize_t end) {
    Py_ssize_t start = from;
    while (start > 0 && text[start - 1] != '\n') start--;
    Py_ssize_t pos = (const unsigned char *)memchr(text + from, '\n', (size_t)(end - from)) - text + 1;
    while (is_blank(text[start])) start++;
    Py_ssize_t length = 0;
    while (!(CLASSES[text[start + length]] & SEPARATOR)) length++;
    while (pos < end) {
        Py_ssize_t next = pos;
        while (is_blank(text[next])) next++;
        if (memcmp(text + next, text + start, (size_t)length) || !(CLASSES[text[next + length]] & SEPARATOR)) break;
        pos = (const unsigned char *)memchr(text + next, '\n', (size_t)(end - next)) - text + 1;
    }
    return pos;
}

/* Part ``part``'s rows moved up behind the ``rows`` before them and renumbered into part 0's: its new queries
 * (first seen at their row + rows), its unknown documents' row numbers. 0 when a query of the part was in an
 * earlier one (the text is then not grouped: ``used`` marks the queries of the parts merged so far); -1 out of
 * memory. */
static int merge_part(Scan *into, Scan *part, int64_t rows, int64_t known_queries, unsigned char **used,
                      int64_t *used_capacity) {
    int64_t n = part->queries.count;
    int64_t *renumbered = malloc((n ? n : 1) * sizeof(int64_t));
    if (!renumbered) return -1;
    for (int64_t id = 0; id < n; id++) {
        if (id < known_queries) {
            renumbered[id] = id;
            continue;
        }
        const unsigned char *at = part->queries.at[id];
        Key key = key_of(at, part->queries.length[id], part->limit);
        renumbered[id] = names_id(&into->queries, &key, at, part->queries.length[id], part->queries.first_row[id] + rows);
        if (renumbered[id] < 0) {
            free(renumbered);
            return -1;
        }
    }
    if (into->queries.count > *used_capacity) {
        unsigned char *grown = realloc(*used, (size_t)into->queries.count);
        if (!grown) {
            free(renumbered);
            return -1;
        }
        memset(grown + *used_capacity, 0, (size_t)(into->queries.count - *used_capacity));
        *used = grown, *used_capacity = into->queries.count;
    }
    int grouped = 1;
    for (int64_t id = 0; id < n; id++) {
        int in_part = id == part->group.query || (id < part->group.seen_capacity && part->group.seen[id]);
        if (!in_part) continue;
        if ((*used)[renumbered[id]] && part != into) grouped = 0;
        (*used)[renumbered[id]] = 1;
    }
    if (part != into) {
        if (into->query + rows != part->query) { /* earlier parts had blank or comment lines */
            memmove(into->query + rows, part->query, part->rows * sizeof(int64_t));
            memmove(into->doc + rows, part->doc, part->rows * sizeof(int64_t));
            memmove(into->value + rows, part->value, part->rows * sizeof(double));
            memmove(into->offset + rows, part->offset, part->rows * sizeof(int64_t));
        }
        for (int64_t r = rows; r < rows + part->rows; r++) {
            into->query[r] = renumbered[into->query[r]];
            if (into->doc[r] >= part->n_known_docs) into->doc[r] += rows;
        }
    }
    free(renumbered);
    return grouped;
}


/* --- the module's functions ------------------------------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Buffer;

static int get_buffer(PyObject *object, Buffer *buffer, int writable, Py_ssize_t bytes, const char *what) {
    if (PyObject_GetBuffer(object, &buffer->view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    buffer->held = 1;
    if (buffer->view.len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, %zd needed", what, buffer->view.len, bytes);
        return -1;
    }
    return 0;
}

static void release(Buffer *buffers, int n) {
    for (int i = 0; i < n; i++)
        if (buffers[i].held) PyBuffer_Release(&buffers[i].view);
}

PyDoc_STRVAR(first_data_line_doc,
"first_data_line(text, size) -> (line, start, end) or None\n\n"
"The 0-based line number and byte range of the first line that is neither blank nor a comment.");

static PyObject *first_data_line(PyObject *self, PyObject *args) {
    Buffer text = {0};
    Py_ssize_t size;
    int64_t line = 0;
    if (!PyArg_ParseTuple(args, "On", &text.view.obj, &size)) return NULL;
    if (get_buffer(text.view.obj, &text, 0, size, "text") < 0 || size < 1 ||
        ((const unsigned char *)text.view.buf)[size - 1] != '\n') {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the text must end in a newline");
        release(&text, 1);
        return NULL;
    }
    const unsigned char *data = text.view.buf;
    Py_ssize_t first = next_data_line(data, 0, size, &line);
    PyObject *result = first == size ? Py_NewRef(Py_None) : Py_BuildValue(
        "Lnn", (long long)line, first, (Py_ssize_t)((const unsigned char *)memchr(data + first, '\n', size - first) - data));
    release(&text, 1);
    return result;
}

PyDoc_STRVAR(count_byte_doc, "count_byte(text, size, byte) -> how many of the text's first size bytes are byte.");

/* SSE2 (every x86-64 has it) compares 16 bytes at a time and sums the matches of up to 255 blocks in bytes: a
 * file's newlines are counted at memory speed, where memchr stops at each one. */
static Py_ssize_t count_in(const unsigned char *p, const unsigned char *end, int byte) {
    Py_ssize_t count = 0;
#if defined(__SSE2__)
    const __m128i target = _mm_set1_epi8((char)byte), zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i sums = zero;
        for (int block = 0; block < 255 && end - p >= 16; block++, p += 16)
            sums = _mm_sub_epi8(sums, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), target));
        __m128i total = _mm_sad_epu8(sums, zero);
        count += _mm_cvtsi128_si64(total) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(total, total));
    }
#endif
    for (; p < end; p++) count += *p == byte;
    return count;
}

static PyObject *count_byte(PyObject *self, PyObject *args) {
    Buffer text = {0};
    Py_ssize_t size, count;
    int byte;
    if (!PyArg_ParseTuple(args, "Oni", &text.view.obj, &size, &byte)) return NULL;
    if (get_buffer(text.view.obj, &text, 0, size, "text") < 0) {
        release(&text, 1);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    count = count_in(text.view.buf, (const unsigned char *)text.view.buf + size, byte);
    Py_END_ALLOW_THREADS
    release(&text, 1);
    return PyLong_FromSsize_t(count);
}

/* (start, length, first row) int64 bytes of the names after the known ones, which all lie in the text. */
static PyObject *new_names(const Names *names, int64_t known, const unsigned char *text) {
    Py_ssize_t n = (Py_ssize_t)(names->count - known), bytes = n * (Py_ssize_t)sizeof(int64_t);
    PyObject *start = PyBytes_FromStringAndSize(NULL, bytes);
    if (!start) return NULL;
    int64_t *offsets = (int64_t *)PyBytes_AS_STRING(start);
    for (Py_ssize_t i = 0; i < n; i++) offsets[i] = names->at[known + i] - text;
    return Py_BuildValue("(Ny#y#)", start, (const char *)(names->length + known), bytes,
                         (const char *)(names->first_row + known), bytes);
}

/* Numbers the n known names, at base + start[i] in a buffer of ``size`` bytes. */
static int intern_known(Names *names, const unsigned char *base, Py_ssize_t size, const int64_t *start,
                        const int64_t *length, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (start[i] < 0 || length[i] < 0 || start[i] + length[i] > size) {
            PyErr_SetString(PyExc_ValueError, "a known name lies outside its buffer");
            return -1;
        }
        Key key = key_of(base + start[i], length[i], base + size);
        if (names_id(names, &key, base + start[i], length[i], -1) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(text, data_start, size, layout, known_docs_only, parts, part_bytes, known_queries, known_docs, query, doc,\n"
"value, offset, keep_docs=False) -> result\n\n"
"Reads the data lines of text[data_start:size] (data_start: the start of a line; lines before it are counted).\n"
"layout: (n_fields, more_fields_ok, query field, doc field, number field, integers), the fields 0-based.\n"
"known_docs_only: documents are looked up among the known ones instead of numbered (one absent gets the number\n"
"of known names + its row), and each query's lines are checked for a document listed twice, which needs each\n"
"query's lines together; the text is then read by up to ``parts`` threads, in parts of at least part_bytes.\n"
"known_*: (n, names, start, length): n names numbered first, at names[start[i]:start[i] + length[i]] (start and\n"
"length int64 buffers; names any bytes buffer, the text itself or another); known_docs may instead be the\n"
"documents table an earlier scan kept, when known_docs_only (it is looked up, not changed). query, doc (int64), value\n"
"(float64) and offset (int64: the document field's first byte) are filled for each data line; they must hold\n"
"one item per newline from data_start on.\n"
"result: (rows, bad_count_line, bad_count, bad_number, repeated, grouped, new_queries, new_docs, controls,\n"
"documents): documents is the documents' table (keep_docs: known and new names, numbered as here; else None),\n"
"bad_count_line is the 0-based line of the first data line with a number of fields the layout refuses (-1 when\n"
"none; the scan stops there), bad_number (start, length) of the first number refused (start -1 when none),\n"
"repeated (row, earlier row) of the first row listing its query's document again (-1, -1 when none; checked\n"
"with known_docs_only), grouped False when a query's lines came apart (known_docs_only; the scan stops there),\n"
"new_*: (start, length, first row) int64 bytes of each name seen after the known ones, in number order;\n"
"controls: whether a field holds an ASCII control character (0x00-0x1f or 0x7f, whitespace aside).");

/* A documents table kept past its scan (scan's keep_docs), with views of the buffers its names lie in. */
#define DOCUMENTS "evalfast.data._tablescan.documents"

typedef struct {
    Names names;
    Buffer text, known;
} Documents;

static void documents_free(PyObject *capsule) {
    Documents *documents = PyCapsule_GetPointer(capsule, DOCUMENTS);
    names_free(&documents->names);
    release(&documents->text, 1);
    release(&documents->known, 1);
    free(documents);
}

/* The table in a capsule, holding the text and the known names' buffer; NULL with an exception when it fails. */
static PyObject *keep_documents(Names *docs, PyObject *text, PyObject *known) {
    Documents *documents = calloc(1, sizeof *documents);
    if (!documents) return PyErr_NoMemory();
    if (get_buffer(text, &documents->text, 0, 0, "text") < 0 || get_buffer(known, &documents->known, 0, 0, "names") < 0) {
        release(&documents->text, 1);
        free(documents);
        return NULL;
    }
    PyObject *capsule = PyCapsule_New(documents, DOCUMENTS, documents_free);
    if (!capsule) {
        release(&documents->text, 1);
        release(&documents->known, 1);
        free(documents);
        return NULL;
    }
    documents->names = *docs; /* moved: the scan no longer frees it */
    memset(docs, 0, sizeof *docs);
    return capsule;
}

PyDoc_STRVAR(table_size_doc, "table_size(documents) -> how many names a kept documents table numbers.");

static PyObject *table_size(PyObject *self, PyObject *capsule) {
    Documents *documents = PyCapsule_GetPointer(capsule, DOCUMENTS);
    return documents ? PyLong_FromLongLong((long long)documents->names.count) : NULL;
}

/* Reads the scores that one exact operation could not, with Python's reader: locale-free, correctly rounded as
 * glibc's strtod is, infinity past 1.8e308. */
static int read_exact_scores(const Scan *scan) {
    for (int64_t k = 0; k < scan->n_exact; k++) {
        Field field = scan->exact[k];
        char local[128], *copy = field.length < (int64_t)sizeof local ? local : PyMem_Malloc(field.length + 1);
        if (!copy) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, scan->text + field.start, field.length);
        copy[field.length] = 0;
        double exact = PyOS_string_to_double(copy, NULL, NULL);
        if (copy != local) PyMem_Free(copy);
        if (exact == -1.0 && PyErr_Occurred()) return -1;
        scan->value[field.row] = exact;
    }
    return 0;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    enum { TEXT, QUERY_NAMES, QUERY_STARTS, QUERY_LENGTHS, DOC_NAMES, DOC_STARTS, DOC_LENGTHS, QUERY, DOC, VALUE,
           OFFSET, N_BUFFERS };
    Buffer buffers[N_BUFFERS];
    memset(buffers, 0, sizeof buffers);
    PyObject *objects[N_BUFFERS];
    Py_ssize_t data_start, size, n_known[2], n_parts, part_bytes;
    Layout layout;
    int known_docs_only, keep_docs = 0;
    PyObject *known_docs;
    if (!PyArg_ParseTuple(args, "Onn(npnnnp)pnn(nOOO)OOOOO|p", &objects[TEXT], &data_start, &size,
                          &layout.n_fields, &layout.more_fields_ok, &layout.picked[0], &layout.picked[1],
                          &layout.picked[2], &layout.integers, &known_docs_only, &n_parts, &part_bytes, &n_known[0],
                          &objects[QUERY_NAMES], &objects[QUERY_STARTS], &objects[QUERY_LENGTHS], &known_docs,
                          &objects[QUERY], &objects[DOC], &objects[VALUE], &objects[OFFSET], &keep_docs))
        return NULL;
    Documents *given = NULL; /* a table kept by an earlier scan, looked up only */
    if (PyCapsule_CheckExact(known_docs)) {
        if (!(given = PyCapsule_GetPointer(known_docs, DOCUMENTS))) return NULL;
        if (!known_docs_only || keep_docs) {
            PyErr_SetString(PyExc_ValueError, "a kept documents table is only looked up: known_docs_only, not keep_docs");
            return NULL;
        }
        n_known[1] = (Py_ssize_t)given->names.count;
        objects[DOC_NAMES] = objects[DOC_STARTS] = objects[DOC_LENGTHS] = NULL;
    } else if (!PyArg_ParseTuple(known_docs, "nOOO", &n_known[1], &objects[DOC_NAMES], &objects[DOC_STARTS],
                                 &objects[DOC_LENGTHS]))
        return NULL;
    for (int k = 0; k < 3; k++) {
        if (layout.picked[k] < 0 || layout.picked[k] >= MAX_FIELDS || layout.picked[k] >= layout.n_fields) {
            PyErr_SetString(PyExc_ValueError, "picked fields must lie within the layout's first 16 fields");
            return NULL;
        }
    }
    if (n_parts < 1 || n_parts > MAX_PARTS || part_bytes < 1) {
        PyErr_Format(PyExc_ValueError, "parts must be 1 to %d and part_bytes positive", MAX_PARTS);
        return NULL;
    }
    PyObject *result = NULL;
    Scan parts[MAX_PARTS];
    memset(parts, 0, sizeof parts);
    int used_parts = 0;
    Names own_docs, *docs = given ? &given->names : &own_docs;
    memset(&own_docs, 0, sizeof own_docs);
    if (get_buffer(objects[TEXT], &buffers[TEXT], 0, size, "text") < 0) goto done;
    const unsigned char *data = buffers[TEXT].view.buf;
    if (size < 1 || data[size - 1] != '\n' || data_start < 0 || data_start > size ||
        (data_start > 0 && data[data_start - 1] != '\n')) {
        PyErr_SetString(PyExc_ValueError, "the text must end in a newline and data_start start a line");
        goto done;
    }
    for (int k = QUERY_NAMES; k <= (given ? QUERY_LENGTHS : DOC_LENGTHS); k++) {
        Py_ssize_t bytes = k == QUERY_NAMES || k == DOC_NAMES ? 0 : n_known[k >= DOC_NAMES] * 8;
        if (get_buffer(objects[k], &buffers[k], 0, bytes, "known names") < 0) goto done;
    }
    for (int k = QUERY; k <= OFFSET; k++)
        if (get_buffer(objects[k], &buffers[k], 1, 0, "an output") < 0) goto done;
    int64_t capacity = buffers[QUERY].view.len / 8; /* checked against the parts' lines below */
    for (int k = DOC; k <= OFFSET; k++)
        if (buffers[k].view.len / 8 < capacity) capacity = buffers[k].view.len / 8;
    /* room for a new document on every line, up to 2^20 lines (32 MiB of slots), on half of them past that:
     * growing costs more than slack */
    int64_t expected_docs = n_known[1] + (known_docs_only ? 0 : capacity <= 1 << 20 ? capacity : capacity / 2);
    if (!given && names_init(docs, expected_docs) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (!given && intern_known(docs, buffers[DOC_NAMES].view.buf, buffers[DOC_NAMES].view.len,
                               buffers[DOC_STARTS].view.buf, buffers[DOC_LENGTHS].view.buf, n_known[1]) < 0)
        goto done;
    if (!known_docs_only || n_parts < 1) n_parts = 1; /* numbering documents: one table, one thread */
    int64_t rows_before = 0, lines_before = count_in(data, data + data_start, '\n');
    for (Py_ssize_t lo = data_start; lo < size || used_parts == 0; used_parts++) {
        Scan *part = &parts[used_parts];
        Py_ssize_t hi = size;
        if (used_parts < n_parts - 1 && size - lo > 2 * part_bytes)
            hi = part_end(data, lo + (size - lo) / (n_parts - used_parts), size);
        int64_t part_lines = count_in(data + lo, data + hi, '\n');
        if (rows_before + part_lines > capacity) {
            PyErr_SetString(PyExc_ValueError, "the outputs must hold one item per newline from data_start on");
            goto done;
        }
        part->text = data, part->limit = data + buffers[TEXT].view.len, part->lo = lo, part->end = hi;
        part->layout = &layout, part->known_docs_only = known_docs_only, part->n_known_docs = n_known[1];
        part->docs = docs;
        part->query = (int64_t *)buffers[QUERY].view.buf + rows_before, part->doc = (int64_t *)buffers[DOC].view.buf + rows_before;
        part->value = (double *)buffers[VALUE].view.buf + rows_before;
        part->offset = (int64_t *)buffers[OFFSET].view.buf + rows_before;
        part->lines_before = lines_before;
        part->bad_count_line = -1, part->bad_number.row = -1, part->repeated = part->repeated_first = -1;
        part->grouped = 1, part->last_query = -1;
        if (names_init(&part->queries, n_known[0] + 1024) < 0 || (known_docs_only && group_init(&part->group) < 0)) {
            PyErr_NoMemory();
            goto done;
        }
        if (intern_known(&part->queries, buffers[QUERY_NAMES].view.buf, buffers[QUERY_NAMES].view.len,
                         buffers[QUERY_STARTS].view.buf, buffers[QUERY_LENGTHS].view.buf, n_known[0]) < 0)
            goto done;
        rows_before += part_lines, lines_before += part_lines, lo = hi;
        if (hi == size) {
            used_parts++;
            break;
        }
    }
    pthread_t threads[MAX_PARTS];
    int started[MAX_PARTS] = {0};
    Py_BEGIN_ALLOW_THREADS
    for (int i = 1; i < used_parts; i++) started[i] = pthread_create(&threads[i], NULL, scan_lines, &parts[i]) == 0;
    scan_lines(&parts[0]);
    for (int i = 1; i < used_parts; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        else scan_lines(&parts[i]);
    }
    Py_END_ALLOW_THREADS

    /* the parts in order: each's first problem, rows and numbers taken into part 0's */
    Scan *scan = &parts[0];
    int64_t rows = 0, bad_count_line = -1, bad_count = 0, repeated = -1, repeated_first = -1;
    Field bad_number = {-1, 0, 0};
    int grouped = 1, controls = 0;
    unsigned char *used = NULL;
    int64_t used_capacity = 0;
    for (int i = 0; i < used_parts; i++) {
        Scan *part = &parts[i];
        if (part->out_of_memory) {
            free(used);
            PyErr_NoMemory();
            goto done;
        }
        if (read_exact_scores(part) < 0) {
            free(used);
            goto done;
        }
        int merged = known_docs_only ? merge_part(scan, part, rows, n_known[0], &used, &used_capacity) : 1;
        if (merged < 0) {
            free(used);
            PyErr_NoMemory();
            goto done;
        }
        grouped &= merged && part->grouped;
        controls |= part->controls != 0;
        if (bad_number.row < 0 && part->bad_number.row >= 0) bad_number = part->bad_number;
        if (repeated < 0 && part->repeated >= 0) repeated = part->repeated + rows, repeated_first = part->repeated_first + rows;
        if (part->bad_count_line >= 0) {
            bad_count_line = part->bad_count_line + part->lines_before, bad_count = part->bad_count;
            rows += part->rows;
            break;
        }
        rows += part->rows;
        if (!grouped) break;
    }
    free(used);
    PyObject *queries = new_names(&scan->queries, n_known[0], data), *new_docs = new_names(docs, n_known[1], data);
    PyObject *kept = !queries || !new_docs ? NULL
                     : keep_docs ? keep_documents(docs, objects[TEXT], objects[DOC_NAMES]) : Py_NewRef(Py_None);
    if (kept)
        result = Py_BuildValue("(LLL(LL)(LL)ONNON)", (long long)rows, (long long)bad_count_line, (long long)bad_count,
                               (long long)(bad_number.row < 0 ? -1 : bad_number.start), (long long)bad_number.length,
                               (long long)repeated, (long long)repeated_first, grouped ? Py_True : Py_False, queries,
                               new_docs, controls ? Py_True : Py_False, kept);
    else {
        Py_XDECREF(queries);
        Py_XDECREF(new_docs);
    }
done:
    for (int i = 0; i < MAX_PARTS; i++) {
        names_free(&parts[i].queries);
        group_free(&parts[i].group);
        free(parts[i].exact);
    }
    names_free(&own_docs);
    release(buffers, N_BUFFERS);
    return result;
}

PyDoc_STRVAR(decode_doc,
"decode(text, start, length) -> list of str\n\n"
"The UTF-8 names at the given byte offsets (int64 buffers of one length), decoded strictly.");

static PyObject *decode(PyObject *self, PyObject *args) {
    Buffer buffers[3];
    PyObject *objects[3], *names = NULL;
    memset(buffers, 0, sizeof buffers);
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    for (int k = 0; k < 3; k++)
        if (get_buffer(objects[k], &buffers[k], 0, 0, "decode") < 0) goto done;
    Py_ssize_t n = buffers[1].view.len / 8;
    if (buffers[2].view.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "start and length must hold as many items");
        goto done;
    }
    const char *text = buffers[0].view.buf;
    const int64_t *start = buffers[1].view.buf, *length = buffers[2].view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (start[i] < 0 || length[i] < 0 || start[i] + length[i] > buffers[0].view.len) {
            PyErr_SetString(PyExc_ValueError, "a name lies outside the text");
            goto done;
        }
    }
    names = PyList_New(n);
    for (Py_ssize_t i = 0; names && i < n; i++) {
        PyObject *name = PyUnicode_DecodeUTF8(text + start[i], length[i], "strict");
        if (!name) Py_CLEAR(names);
        else PyList_SET_ITEM(names, i, name);
    }
done:
    release(buffers, 3);
    return names;
}

PyDoc_STRVAR(fields_at_doc,
"fields_at(text, size, offsets) -> list of str\n\n"
"The UTF-8 fields that start at the given byte offsets (an int64 buffer) of a text ending in a newline, each up\n"
"to the next C whitespace.");

static PyObject *fields_at(PyObject *self, PyObject *args) {
    Buffer buffers[2];
    PyObject *objects[2], *names = NULL;
    Py_ssize_t size;
    memset(buffers, 0, sizeof buffers);
    if (!PyArg_ParseTuple(args, "OnO", &objects[0], &size, &objects[1])) return NULL;
    if (get_buffer(objects[0], &buffers[0], 0, size, "text") < 0 || get_buffer(objects[1], &buffers[1], 0, 0, "offsets") < 0)
        goto done;
    const unsigned char *text = buffers[0].view.buf;
    const int64_t *offsets = buffers[1].view.buf;
    Py_ssize_t n = buffers[1].view.len / 8;
    if (size < 1 || text[size - 1] != '\n') {
        PyErr_SetString(PyExc_ValueError, "the text must end in a newline");
        goto done;
    }
    names = PyList_New(n);
    for (Py_ssize_t i = 0; names && i < n; i++) {
        if (offsets[i] < 0 || offsets[i] >= size) {
            PyErr_SetString(PyExc_ValueError, "an offset lies outside the text");
            Py_CLEAR(names);
            break;
        }
        const unsigned char *p = text + offsets[i], *q = p;
        while (!(CLASSES[*q] & SEPARATOR)) q++;
        PyObject *name = PyUnicode_DecodeUTF8((const char *)p, q - p, "strict");
        if (!name) Py_CLEAR(names);
        else PyList_SET_ITEM(names, i, name);
    }
done:
    release(buffers, 2);
    return names;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"first_data_line", first_data_line, METH_VARARGS, first_data_line_doc},
    {"count_byte", count_byte, METH_VARARGS, count_byte_doc},
    {"table_size", table_size, METH_O, table_size_doc},
    {"decode", decode, METH_VARARGS, decode_doc},
    {"fields_at", fields_at, METH_VARARGS, fields_at_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "evalfast.data._tablescan",
                                    "The native half of evalfast.data.trec_parse: one pass over a qrels or run file.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__tablescan(void) {
    init_classes();
    return PyModule_Create(&module);
}
