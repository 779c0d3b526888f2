/* pcert_agent.c - agent mode: execute library calls sent by the host, report what came back
 * (docs/agent.md). The host generates the inputs and judges the answers; nothing here knows
 * what a right answer is.
 *
 * Nothing read from the channel is trusted: a request is checked for length, shape, CRC,
 * sequence number, op, argument count and the range of every argument before anything is
 * called, and printf/strftime formats are checked so that a call never reads an argument that
 * was not passed or writes through %n. Calls run in this process: a fork per call would cost
 * more than the call itself under TCG, and a call that crashes takes the agent down, which the
 * host sees (no reply, the console) and answers by booting again.
 *
 * Replies are built here rather than with pcert.c's record writer: they go to the agent
 * channel with their own sequence numbers, and numbers are formatted by hand, so a broken
 * printf family cannot garble the report of its own test.
 * The same channel code serves PCERT_PARAMS (docs/protocol.md): a guest booted from a saved VM
 * snapshot waits there for its run's parameters, one PCERTP line, checked as strictly.
 * -DPCERT_MINIMAL (bare metal): there is no second channel; agent mode and PCERT_PARAMS are
 * refused.
 */
#include "pcert.h"
#include "pcert_internal.h"

#include <stdio.h>
#include <string.h>

#ifdef PCERT_MINIMAL
int pcert_agent_open(const char *channel, char *why, size_t size)
{
    (void)channel;
    snprintf(why, size, "%s", "agent mode not available on this target");
    return -1;
}

long pcert_agent_serve(void) { return 0; }

int pcert_params_open(const char *channel, char *why, size_t size)
{
    (void)channel;
    snprintf(why, size, "%s", "PCERT_PARAMS not available on this target");
    return -1;
}

int pcert_params_read(int fd, char *why, size_t size)
{
    (void)fd;
    snprintf(why, size, "%s", "PCERT_PARAMS not available on this target");
    return -1;
}
#else
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 16384    /* longest request line without its \n; longer ones are refused */
#define ARGS_MAX 12
#define BUF_MAX 512      /* the largest size/n of snprintf, strftime and strncpy */
#define LIST_MAX 256     /* ints in a qsort/bsearch list */
#define WIDTH_DIGITS 4   /* a field width or precision below 10000: bounded work per call */
#define PARAMS_LINE_MAX 4096   /* longest PCERTP line without its \n */
#define PARAMS_MAX 32          /* NAME=value pairs in it */

typedef char double_is_binary64[sizeof (double) == 8 ? 1 : -1];

static int chan = -1;
static unsigned long long expect_q;      /* the sequence number the next request must carry */
static unsigned long long reply_seq;
static char line[REQ_MAX + 1], inbuf[4096];
static size_t line_len, in_pos, in_len;
static char reply[REQ_MAX + 64];
static size_t reply_len;
static int reply_full;
static char *arg[ARGS_MAX];              /* decoded in place, each NUL-terminated */
static size_t arg_len[ARGS_MAX];
static char why_buf[200];

/* ---- the channel ---- */

/* Raw mode on a terminal: no echo (the host would read its own request back), no line
 * editing, no CR/LF translation, no flow control. Not a terminal (a socket): nothing to do. */
static void make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) return;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1, t.c_cc[VTIME] = 0;
#ifdef B115200   /* a UART's highest rate: QEMU paces its 16550 by the divisor set here */
    cfsetispeed(&t, B115200), cfsetospeed(&t, B115200);
#endif
    tcsetattr(fd, TCSANOW, &t);
}

/* The channel a parameter names: `fd:N`, a descriptor inherited from the host target's runner,
 * or a device opened read-write and put in raw mode. The descriptor, or -1 and why, which
 * begins with `label` (e.g. "PCERT_AGENT=") and the channel. */
static int open_channel(const char *label, const char *channel, char *why, size_t size)
{
    long fd = -1;
    const char *p;
    if (strncmp(channel, "fd:", 3) == 0) {
        for (p = channel + 3, fd = 0; *p >= '0' && *p <= '9' && fd < 65536; p++) fd = fd * 10 + (*p - '0');
        if (p == channel + 3 || *p != '\0' || fd >= 65536 || fcntl((int)fd, F_GETFD) < 0) {
            snprintf(why, size, "%s%.40s: not an open descriptor", label, channel);
            return -1;
        }
    } else if ((fd = open(channel, O_RDWR | O_NOCTTY)) < 0) {
        snprintf(why, size, "%s%.80s: cannot open: %s", label, channel, pcert_errno_name(errno));
        return -1;
    }
    make_raw((int)fd);
    return (int)fd;
}

int pcert_agent_open(const char *channel, char *why, size_t size)
{
    if (channel == NULL || *channel == '\0') {
        snprintf(why, size, "%s", "PCERT_AGENT is not set: agent mode needs a channel (a device or fd:N)");
        return -1;
    }
    if ((chan = open_channel("PCERT_AGENT=", channel, why, size)) < 0) return -1;
    /* Calendar functions are checked against UTC, whatever the image's defaults. */
    setenv("TZ", "UTC0", 1);
    tzset();
    return 0;
}

/* One byte of input, -1 at the end of input or on an error. */
static int next_byte(void)
{
    ssize_t n;
    if (in_pos == in_len) {
        do n = read(chan, inbuf, sizeof inbuf); while (n < 0 && errno == EINTR);
        if (n <= 0) return -1;
        in_pos = 0, in_len = (size_t)n;
    }
    return (unsigned char)inbuf[in_pos++];
}

/* 1: a request line is in `line`; -1: it was longer than REQ_MAX (dropped); 0: end of input. */
static int read_line(void)
{
    int c, too_long = 0;
    line_len = 0;
    while ((c = next_byte()) >= 0 && c != '\n') {
        if (line_len < REQ_MAX) line[line_len++] = (char)c;
        else too_long = 1;
    }
    if (c < 0) return 0;
    if (line_len > 0 && line[line_len - 1] == '\r') line_len--;
    line[line_len] = '\0';
    return too_long ? -1 : 1;
}

static int write_all(const char *p, size_t n)
{
    ssize_t w;
    while (n > 0) {
        w = write(chan, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* ---- replies ---- */

static void put_raw(const char *s, size_t n)
{
    if (reply_full || reply_len + n > sizeof reply - 16) {   /* room for " <crc>\n" */
        reply_full = 1;
        return;
    }
    memcpy(reply + reply_len, s, n);
    reply_len += n;
}

/* " key=value", the value percent-encoded as in every record. */
static void put_mem(const char *key, const void *value, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = value;
    char esc[3] = { '%', 0, 0 };
    size_t i;
    put_raw(" ", 1), put_raw(key, strlen(key)), put_raw("=", 1);
    for (i = 0; i < n; i++) {
        if (pcert_plain_byte(p[i])) {
            put_raw((const char *)p + i, 1);
        } else {
            esc[1] = hex[p[i] >> 4], esc[2] = hex[p[i] & 15];
            put_raw(esc, 3);
        }
    }
}

static void put_str(const char *key, const char *s) { put_mem(key, s, strlen(s)); }

/* Decimal text of -mag or mag, ending at end (not terminated); returns its start. */
static char *decimal(char *end, int negative, unsigned long long mag)
{
    do *--end = (char)('0' + mag % 10); while ((mag /= 10) != 0);
    if (negative) *--end = '-';
    return end;
}

static void put_ull(const char *key, unsigned long long v)
{
    char t[24], *s = decimal(t + sizeof t, 0, v);
    put_mem(key, s, (size_t)(t + sizeof t - s));
}

static void put_ll(const char *key, long long v)
{
    char t[24], *s = decimal(t + sizeof t, v < 0, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    put_mem(key, s, (size_t)(t + sizeof t - s));
}

static void put_errno(int e)
{
    const char *name = pcert_errno_name(e);
    if (strcmp(name, "E?") == 0) put_ll("errno", e);
    else put_str("errno", name);
}

static void put_idx(const char *key, const void *found, const void *base)
{
    put_ll(key, found == NULL ? -1 : (long long)((const char *)found - (const char *)base));
}

static void put_tm(const struct tm *t)
{
    put_ll("sec", t->tm_sec), put_ll("min", t->tm_min), put_ll("hour", t->tm_hour);
    put_ll("mday", t->tm_mday), put_ll("mon", t->tm_mon), put_ll("year", t->tm_year);
    put_ll("wday", t->tm_wday), put_ll("yday", t->tm_yday), put_ll("isdst", t->tm_isdst);
}

static void begin_reply(long long q, const char *op, size_t op_len)
{
    char t[24], *s = decimal(t + sizeof t, 0, reply_seq);
    const char *nonce = pcert_run_nonce();
    reply_len = 0, reply_full = 0;
    put_raw("PCERT1 ", 7), put_raw(nonce, strlen(nonce)), put_raw(" ", 1);
    put_raw(s, (size_t)(t + sizeof t - s)), put_raw(" reply", 6);
    put_ll("q", q);
    put_mem("op", op, op_len);
}

static void ok(void) { put_str("status", "ok"); }

static int send_reply(void)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t crc = pcert_crc32(reply, reply_len);
    int i;
    reply[reply_len++] = ' ';
    for (i = 7; i >= 0; i--) reply[reply_len++] = hex[(crc >> (4 * i)) & 15];
    reply[reply_len++] = '\n';
    reply_seq++;
    return write_all(reply, reply_len);
}

/* ---- arguments ---- */

/* Strict decimal -?[0-9]{1,20} within [lo, hi]; NULL, or why not. */
static const char *num(int i, const char *name, long long lo, long long hi, long long *out)
{
    const char *s = arg[i];
    unsigned long long mag = 0;
    int negative = *s == '-', digits = 0, over = 0;
    long long v;
    for (s += negative; *s >= '0' && *s <= '9'; s++, digits++) {
        if (mag > (ULLONG_MAX - 9) / 10) over = 1;
        else mag = mag * 10 + (unsigned)(*s - '0');
    }
    if (digits > 0 && !over && *s == '\0' && (size_t)(s - arg[i]) == arg_len[i]
        && mag <= (unsigned long long)LLONG_MAX + (unsigned)negative) {
        v = negative ? (mag == 0 ? 0 : -(long long)(mag - 1) - 1) : (long long)mag;
        if (v >= lo && v <= hi) {
            *out = v;
            return NULL;
        }
    }
    snprintf(why_buf, sizeof why_buf, "%s: want a decimal number from %lld to %lld", name, lo, hi);
    return why_buf;
}

/* Unsigned decimal [0-9]{1,20} up to hi. */
static const char *unum(int i, const char *name, unsigned long long hi, unsigned long long *out)
{
    const char *s = arg[i];
    unsigned long long v = 0;
    int digits = 0, over = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (v > (ULLONG_MAX - (unsigned)(*s - '0')) / 10) over = 1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (digits > 0 && !over && *s == '\0' && (size_t)(s - arg[i]) == arg_len[i] && v <= hi) {
        *out = v;
        return NULL;
    }
    snprintf(why_buf, sizeof why_buf, "%s: want a decimal number from 0 to %llu", name, hi);
    return why_buf;
}

static const char *num_int(int i, const char *name, int lo, int hi, int *out)
{
    long long v;
    const char *why = num(i, name, lo, hi, &v);
    if (why == NULL) *out = (int)v;
    return why;
}

/* A comma-separated list of ints, at most LIST_MAX; the empty string is the empty list. */
static const char *int_list(int i, int *v, size_t *n)
{
    char *p = arg[i], *comma;
    long long x;
    const char *why;
    *n = 0;
    if (arg_len[i] != strlen(arg[i])) return "list: holds a NUL byte";
    if (*p == '\0') return NULL;
    for (;;) {
        if (*n == LIST_MAX) return "list: more than 256 numbers";
        comma = strchr(p, ',');
        if (comma != NULL) *comma = '\0';
        arg[i] = p, arg_len[i] = strlen(p);   /* num() checks one element at a time */
        if ((why = num(i, "list element", INT_MIN, INT_MAX, &x)) != NULL) return why;
        v[(*n)++] = (int)x;
        if (comma == NULL) return NULL;
        p = comma + 1;
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void put_list(const char *key, const int *v, size_t n)
{
    static char text[LIST_MAX * 12 + 1];
    char t[24], *s;
    size_t len = 0, i, k;
    for (i = 0; i < n; i++) {
        s = decimal(t + sizeof t, v[i] < 0, v[i] < 0 ? 0ULL - (unsigned long long)v[i] : (unsigned long long)v[i]);
        if (i > 0) text[len++] = ',';
        for (k = 0; s + k < t + sizeof t; k++) text[len++] = s[k];
    }
    put_mem(key, text, len);
}

/* ---- format checks ---- */

enum { T_NONE, T_LL, T_ULL, T_DBL, T_STR, T_CHR };

/* The printf rule of docs/agent.md: exactly one conversion that fits `type` (none for
 * T_NONE), besides %%; no %n, no * width or precision, no $ argument numbers. */
static const char *check_printf(const char *f, int type)
{
    int convs = 0, digits, ll;
    char c;
    for (; *f != '\0'; f++) {
        if (*f != '%') continue;
        if (*++f == '%') continue;
        while (*f != '\0' && strchr("-+ #0'", *f) != NULL) f++;
        for (digits = 0; *f >= '0' && *f <= '9'; f++) digits++;
        if (*f == '.')
            for (f++; *f >= '0' && *f <= '9'; f++) digits++;
        if (*f == '*') return "fmt: a * width or precision is not accepted";
        if (*f == '$') return "fmt: $ argument numbers are not accepted";
        if (digits > 2 * WIDTH_DIGITS) return "fmt: width or precision too long";
        ll = 0;
        if (f[0] == 'l' && f[1] == 'l') ll = 1, f += 2;
        else if (*f != '\0' && strchr("hlLjzt", *f) != NULL) ll = -1, f++;
        if (ll == -1 && f[-1] == 'h' && *f == 'h') f++;
        if ((c = *f) == '\0') return "fmt: a conversion is cut off at the end";
        if (c == 'n') return "fmt: %n is not accepted";
        if (!((type == T_LL && ll == 1 && strchr("di", c)) ||
              (type == T_ULL && ll == 1 && strchr("ouxX", c)) ||
              (type == T_DBL && ll == 0 && strchr("eEfFgGaA", c)) ||
              (type == T_STR && ll == 0 && c == 's') || (type == T_CHR && ll == 0 && c == 'c'))) {
            snprintf(why_buf, sizeof why_buf, "fmt: conversion %%%s%c does not fit type", ll == 1 ? "ll" : ll ? "?" : "", c);
            return why_buf;
        }
        convs++;
    }
    if (convs != (type == T_NONE ? 0 : 1))
        return type == T_NONE ? "fmt: type none takes no conversion" : "fmt: want exactly one conversion";
    return NULL;
}

/* POSIX strftime conversions only (others are undefined): %[+0][width][E|O]<c>, where the flag
 * and width go with C F G Y alone, E and O with the conversions they modify. */
static const char *check_strftime(const char *f)
{
    const char *allowed;
    int sized, digits, mod;
    for (; *f != '\0'; f++) {
        if (*f != '%') continue;
        f++;
        sized = *f == '+' || *f == '0';
        f += sized;
        for (digits = 0; *f >= '0' && *f <= '9'; f++) digits++;
        if (digits > WIDTH_DIGITS) return "fmt: width too long";
        sized |= digits > 0;
        mod = *f == 'E' || *f == 'O' ? *f++ : 0;
        allowed = mod == 'E' ? "cCxXyY" : mod == 'O' ? "deHImMSuUVwWy"
                : sized ? "CFGY" : "aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%";
        if (*f == '\0' || strchr(allowed, *f) == NULL || (sized && mod)) {
            snprintf(why_buf, sizeof why_buf, "fmt: %%%c is not a POSIX strftime conversion here",
                     *f ? *f : '?');
            return why_buf;
        }
    }
    return NULL;
}

/* ---- operations ---- */

static const char *do_strto(int which)
{
    const char *s = arg[0], *why;
    char *end = NULL;
    int base, e;
    /* Any int: what an unsupported base does (EINVAL) is the library's to show. */
    if ((why = num_int(1, "base", INT_MIN, INT_MAX, &base)) != NULL) return why;
    errno = 0;
    if (which == 0) {
        long r = strtol(s, &end, base);
        e = errno, ok(), put_ll("ret", r);
    } else if (which == 1) {
        long long r = strtoll(s, &end, base);
        e = errno, ok(), put_ll("ret", r);
    } else if (which == 2) {
        unsigned long r = strtoul(s, &end, base);
        e = errno, ok(), put_ull("ret", r);
    } else {
        unsigned long long r = strtoull(s, &end, base);
        e = errno, ok(), put_ull("ret", r);
    }
    put_idx("end", end, s), put_errno(e);
    return NULL;
}

static void put_bits(const char *key, double d)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t bits;
    char text[16];
    int i;
    memcpy(&bits, &d, 8);
    for (i = 0; i < 16; i++) text[i] = hex[(bits >> (60 - 4 * i)) & 15];
    put_mem(key, text, 16);
}

static const char *do_strtod(int which)
{
    char *end = NULL;
    double d;
    int e;
    (void)which;
    errno = 0;
    d = strtod(arg[0], &end);
    e = errno;
    ok(), put_bits("bits", d), put_idx("end", end, arg[0]), put_errno(e);
    return NULL;
}

static const char *hex_double(int i, double *out)
{
    uint64_t bits = 0;
    int k;
    char c;
    for (k = 0; k < 16; k++) {
        c = arg[i][k];
        if (c >= '0' && c <= '9') bits = bits << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f') bits = bits << 4 | (uint64_t)(c - 'a' + 10);
        else return "value: want 16 lower-case hex digits (binary64)";
    }
    if (arg_len[i] != 16) return "value: want 16 lower-case hex digits (binary64)";
    memcpy(out, &bits, 8);
    return NULL;
}

static const char *do_snprintf(int which)
{
    static const char *const types[] = { "none", "ll", "ull", "dbl", "str", "chr" };
    char out[BUF_MAX + 1];
    const char *fmt = arg[1], *why;
    long long size, ll = 0;
    unsigned long long ull = 0;
    double dbl = 0;
    int type, ret, chr = 0;
    (void)which;
    if ((why = num(0, "size", 0, BUF_MAX, &size)) != NULL) return why;
    for (type = 0; type < 6 && strcmp(arg[2], types[type]) != 0; type++) continue;
    if (type == 6) return "type: want one of none ll ull dbl str chr";
    if ((why = check_printf(fmt, type)) != NULL) return why;
    if (type == T_LL) why = num(3, "value", LLONG_MIN, LLONG_MAX, &ll);
    else if (type == T_ULL) why = unum(3, "value", ULLONG_MAX, &ull);
    else if (type == T_DBL) why = hex_double(3, &dbl);
    else if (type == T_CHR) why = num_int(3, "value", INT_MIN, INT_MAX, &chr);
    else if (type == T_NONE && arg_len[3] != 0) why = "value: must be empty for type none";
    if (why != NULL) return why;
    memset(out, 0, sizeof out);
    switch (type) {
    case T_LL: ret = snprintf(out, (size_t)size, fmt, ll); break;
    case T_ULL: ret = snprintf(out, (size_t)size, fmt, ull); break;
    case T_DBL: ret = snprintf(out, (size_t)size, fmt, dbl); break;
    case T_STR: ret = snprintf(out, (size_t)size, fmt, arg[3]); break;
    case T_CHR: ret = snprintf(out, (size_t)size, fmt, chr); break;
    default: ret = snprintf(out, (size_t)size, fmt, 0); break;   /* the 0 is never read */
    }
    ok(), put_ll("ret", ret), put_str("out", size > 0 ? out : "");
    return NULL;
}

static const char *do_gmtime(int which)
{
    const char *why;
    long long t;
    struct tm *r;
    time_t tt;
    int e;
    (void)which;
    if ((why = num(0, "t", LLONG_MIN, LLONG_MAX, &t)) != NULL) return why;
    tt = (time_t)t;
    if ((long long)tt != t) return "t: out of the range of time_t";
    errno = 0;
    r = gmtime(&tt);
    e = errno;
    ok(), put_ll("null", r == NULL), put_errno(e);
    if (r != NULL) put_tm(r);
    return NULL;
}

static const char *tm_fields(int first, struct tm *t, int normal)
{
    static const char *const names[] = { "sec", "min", "hour", "mday", "mon", "year", "wday", "yday", "isdst" };
    static const int lo[] = { 0, 0, 0, 1, 0, -11899, 0, 0, -1 }, hi[] = { 60, 59, 23, 31, 11, 8099, 6, 365, 1 };
    int v[9], i, k, n = normal ? 9 : 7;
    const char *why;
    for (i = 0; i < n; i++) {
        k = normal || i < 6 ? i : 8;   /* mktime takes no wday, yday */
        why = num_int(first + i, names[k], normal ? lo[k] : INT_MIN, normal ? hi[k] : INT_MAX, &v[k]);
        if (why != NULL) return why;
    }
    memset(t, 0, sizeof *t);
    t->tm_sec = v[0], t->tm_min = v[1], t->tm_hour = v[2], t->tm_mday = v[3], t->tm_mon = v[4];
    t->tm_year = v[5], t->tm_isdst = v[8];
    t->tm_wday = normal ? v[6] : -1, t->tm_yday = normal ? v[7] : -1;   /* -1: tells failure */
    return NULL;
}

static const char *do_mktime(int which)
{
    const char *why;
    struct tm t;
    time_t r;
    int e;
    (void)which;
    if ((why = tm_fields(0, &t, 0)) != NULL) return why;
    errno = 0;
    r = mktime(&t);
    e = errno;
    ok(), put_ll("ret", (long long)r), put_errno(e), put_tm(&t);
    return NULL;
}

static const char *do_strftime(int which)
{
    char out[BUF_MAX + 1];
    const char *why;
    long long size;
    struct tm t;
    size_t ret;
    (void)which;
    if ((why = num(0, "size", 0, BUF_MAX, &size)) != NULL || (why = check_strftime(arg[1])) != NULL
        || (why = tm_fields(2, &t, 1)) != NULL)
        return why;
    memset(out, 0, sizeof out);
    ret = strftime(out, (size_t)size, arg[1], &t);
    ok(), put_ull("ret", ret), put_mem("out", out, ret <= BUF_MAX ? ret : 0);
    return NULL;
}

static const char *do_qsort(int which)
{
    static int v[LIST_MAX];
    const char *why;
    size_t n;
    (void)which;
    if ((why = int_list(0, v, &n)) != NULL) return why;
    qsort(v, n, sizeof v[0], cmp_int);
    ok(), put_list("out", v, n);
    return NULL;
}

static const char *do_bsearch(int which)
{
    static int v[LIST_MAX];
    const char *why;
    const int *found;
    size_t n, i;
    int key;
    (void)which;
    if ((why = num_int(1, "key", INT_MIN, INT_MAX, &key)) != NULL || (why = int_list(0, v, &n)) != NULL)
        return why;
    for (i = 1; i < n; i++)
        if (v[i - 1] > v[i]) return "list: not sorted";
    found = bsearch(&key, v, n, sizeof v[0], cmp_int);
    ok(), put_ll("idx", found == NULL ? -1 : (long long)(found - v));   /* an index, not bytes */
    return NULL;
}

/* s must be a C string (the str* functions read to its NUL). */
static const char *do_str(int which)
{
    const char *why;
    unsigned long long n = 0;
    int c = 0;
    switch (which) {
    case 0: ok(), put_ull("ret", strlen(arg[0])); break;
    case 1: ok(), put_ll("ret", strcmp(arg[0], arg[1])); break;
    case 2:
        if ((why = unum(2, "n", (size_t)-1, &n)) != NULL) return why;
        ok(), put_ll("ret", strncmp(arg[0], arg[1], (size_t)n));
        break;
    case 3: case 4:
        if ((why = num_int(1, "c", 0, 255, &c)) != NULL) return why;
        ok(), put_idx("idx", which == 3 ? strchr(arg[0], c) : strrchr(arg[0], c), arg[0]);
        break;
    case 5: ok(), put_idx("idx", strstr(arg[0], arg[1]), arg[0]); break;
    case 6: ok(), put_idx("idx", strpbrk(arg[0], arg[1]), arg[0]); break;
    case 7: ok(), put_ull("ret", strspn(arg[0], arg[1])); break;
    default: ok(), put_ull("ret", strcspn(arg[0], arg[1])); break;
    }
    return NULL;
}

/* The mem* functions get the arguments' full decoded lengths (NUL bytes included). */
static const char *do_mem(int which)
{
    const char *why;
    unsigned long long n;
    int c;
    if (which == 0) {
        if ((why = unum(2, "n", arg_len[0] < arg_len[1] ? arg_len[0] : arg_len[1], &n)) != NULL) return why;
        ok(), put_ll("ret", memcmp(arg[0], arg[1], (size_t)n));
    } else {
        if ((why = num_int(1, "c", 0, 255, &c)) != NULL || (why = unum(2, "n", arg_len[0], &n)) != NULL)
            return why;
        ok(), put_idx("idx", memchr(arg[0], c, (size_t)n), arg[0]);
    }
    return NULL;
}

static const char *do_strncpy(int which)
{
    char dst[BUF_MAX];
    const char *why;
    unsigned long long n;
    (void)which;
    if ((why = unum(1, "n", BUF_MAX, &n)) != NULL) return why;
    if (n == 0) return "n: want a decimal number from 1 to 512";
    memset(dst, 0xAA, sizeof dst);
    strncpy(dst, arg[0], (size_t)n);
    ok(), put_mem("out", dst, (size_t)n);
    return NULL;
}

static const char *do_fnmatch(int which)
{
    static const struct { const char *name; int value; } names[] = {
        { "PATHNAME", FNM_PATHNAME }, { "PERIOD", FNM_PERIOD }, { "NOESCAPE", FNM_NOESCAPE },
    };
    char *p = arg[2], *bar;
    int flags = 0, ret;
    size_t i;
    (void)which;
    while (*p != '\0') {
        if ((bar = strchr(p, '|')) != NULL) *bar = '\0';
        for (i = 0; i < sizeof names / sizeof names[0] && strcmp(p, names[i].name) != 0; i++) continue;
        if (i == sizeof names / sizeof names[0]) return "flags: want names from PATHNAME PERIOD NOESCAPE, |-separated";
        flags |= names[i].value;
        if (bar == NULL) break;
        p = bar + 1;
        if (*p == '\0') return "flags: want names from PATHNAME PERIOD NOESCAPE, |-separated";
    }
    ret = fnmatch(arg[0], arg[1], flags);
    ok();
    if (ret == FNM_NOMATCH) put_str("ret", "FNM_NOMATCH");
    else put_ll("ret", ret);
    return NULL;
}

static const char *do_quit(int which) { (void)which; ok(); return NULL; }

static const struct op {
    const char *name, *args;   /* argument names, comma-separated: also their count */
    const char *(*fn)(int);
    int which;
} ops[] = {
    { "strtol", "s,base", do_strto, 0 }, { "strtoll", "s,base", do_strto, 1 },
    { "strtoul", "s,base", do_strto, 2 }, { "strtoull", "s,base", do_strto, 3 },
    { "strtod", "s", do_strtod, 0 },
    { "snprintf", "size,fmt,type,value", do_snprintf, 0 },
    { "gmtime", "t", do_gmtime, 0 },
    { "mktime", "sec,min,hour,mday,mon,year,isdst", do_mktime, 0 },
    { "strftime", "size,fmt,sec,min,hour,mday,mon,year,wday,yday,isdst", do_strftime, 0 },
    { "qsort", "list", do_qsort, 0 }, { "bsearch", "list,key", do_bsearch, 0 },
    { "strlen", "s", do_str, 0 }, { "strcmp", "a,b", do_str, 1 }, { "strncmp", "a,b,n", do_str, 2 },
    { "strchr", "s,c", do_str, 3 }, { "strrchr", "s,c", do_str, 4 },
    { "strstr", "hay,needle", do_str, 5 }, { "strpbrk", "s,set", do_str, 6 },
    { "strspn", "s,set", do_str, 7 }, { "strcspn", "s,set", do_str, 8 },
    { "memcmp", "a,b,n", do_mem, 0 }, { "memchr", "s,c,n", do_mem, 1 },
    { "strncpy", "src,n", do_strncpy, 0 },
    { "fnmatch", "pattern,string,flags", do_fnmatch, 0 },
    { "quit", "", do_quit, 0 },
};

/* ---- requests ---- */

/* The CRC at the end of a host's line: exactly 8 lower-case hex digits; 0, or -1 if not. */
static int crc_text(const char *p, uint32_t *crc)
{
    int i, k;
    for (*crc = 0, i = 0; i < 8; i++, p++) {
        if ((k = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1) < 0)
            return -1;
        *crc = *crc << 4 | (uint32_t)k;
    }
    return *p == '\0' ? 0 : -1;
}

static int hex_value(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

/* Decodes "=<percent-encoded>" of length n in place; -1 if it is not what the host encodes. */
static long decode(char *s, size_t n)
{
    size_t i, out = 0;
    int hi, lo;
    if (n == 0 || s[0] != '=') return -1;
    for (i = 1; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 > n - 1 || (hi = hex_value(s[i + 1])) < 0 || (lo = hex_value(s[i + 2])) < 0) return -1;
            s[out++] = (char)(hi << 4 | lo), i += 2;
        } else if (pcert_plain_byte((unsigned char)s[i])) {
            s[out++] = s[i];
        } else {
            return -1;
        }
    }
    s[out] = '\0';
    return (long)out;
}

/* Checks the request in `line`; NULL and *o set, or why not. *q and the op text are set as
 * soon as they are known to be the host's (CRC and sequence number checked). */
static const char *parse_request(long long *q, const struct op **o, const char **op, size_t *op_len)
{
    char *tok[ARGS_MAX + 4], *p, *space;
    unsigned long long seq = 0;
    uint32_t crc;
    size_t i, ntok = 0, body;
    int k, nargs;
    long len;
    const char *a;

    for (i = 0; i < line_len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return "malformed request: a byte outside printable ASCII";
    if (line_len < 7 || memcmp(line, "PCERTQ ", 7) != 0) return "malformed request: no PCERTQ";
    if ((space = strrchr(line, ' ')) == NULL || line + line_len - space != 9
        || crc_text(space + 1, &crc) != 0)
        return "malformed request: no CRC at the end";
    body = (size_t)(space - line);
    if (pcert_crc32(line, body) != crc) return "CRC mismatch";
    *space = '\0';
    for (p = line; ntok < ARGS_MAX + 4; p = space + 1) {
        tok[ntok++] = p;
        if ((space = strchr(p, ' ')) == NULL) break;
        *space = '\0';
    }
    if (space != NULL) return "malformed request: too many arguments";
    for (i = 0; i < ntok; i++)
        if (*tok[i] == '\0') return "malformed request: an empty part (two spaces)";
    if (ntok < 3) return "malformed request: no op";
    for (p = tok[1]; *p >= '0' && *p <= '9' && p - tok[1] < 19; p++) seq = seq * 10 + (unsigned)(*p - '0');
    if (*p != '\0' || (tok[1][0] == '0' && tok[1][1] != '\0')) return "malformed request: bad sequence number";
    if (seq != expect_q) {
        snprintf(why_buf, sizeof why_buf, "sequence number %llu, expected %llu", seq, expect_q);
        return why_buf;
    }
    expect_q++;
    *q = (long long)seq;
    *op = tok[2], *op_len = strlen(tok[2]) < 40 ? strlen(tok[2]) : 40;
    for (i = 0; i < sizeof ops / sizeof ops[0] && strcmp(ops[i].name, tok[2]) != 0; i++) continue;
    if (i == sizeof ops / sizeof ops[0]) return "unknown op";
    for (nargs = 0, a = ops[i].args; *a != '\0'; nargs++, a += strcspn(a, ","), a += *a == ',') continue;
    if ((size_t)nargs != ntok - 3) {
        snprintf(why_buf, sizeof why_buf, "%s takes %d arguments (%s), got %lu", ops[i].name, nargs,
                 ops[i].args, (unsigned long)(ntok - 3));
        return why_buf;
    }
    for (k = 0; k < nargs; k++) {
        if ((len = decode(tok[3 + k], strlen(tok[3 + k]))) < 0) {
            snprintf(why_buf, sizeof why_buf, "argument %d: want = and a percent-encoded value", k + 1);
            return why_buf;
        }
        arg[k] = tok[3 + k], arg_len[k] = (size_t)len;
    }
    *o = &ops[i];
    return NULL;
}

/* Answers the request in `line`; 1 when it was quit. */
static int handle(void)
{
    const struct op *o = NULL;
    const char *why, *op = "";
    size_t op_len = 0;
    long long q = -1;
    why = parse_request(&q, &o, &op, &op_len);
    if (why == NULL) {
        begin_reply(q, op, op_len);
        why = o->fn(o->which);
        if (why == NULL && reply_full) why = "reply too long";
    }
    if (why != NULL) {
        begin_reply(q, op, op_len);
        put_str("status", "error"), put_str("reason", why);
        return 0;
    }
    return o->fn == do_quit;
}

long pcert_agent_serve(void)
{
    long served = 0;
    int r, quit = 0;
    while (!quit && (r = read_line()) != 0) {
        if (r < 0) {
            begin_reply(-1, "", 0);
            put_str("status", "error"), put_str("reason", "request longer than 16384 bytes");
        } else {
            quit = handle();
        }
        if (send_reply() != 0) break;
        served++;
    }
    return served;
}

/* ---- the run's parameters (PCERT_PARAMS, docs/protocol.md) ---- */

int pcert_params_open(const char *channel, char *why, size_t size)
{
    return open_channel("", channel, why, size);   /* no TZ here: that is agent mode's business */
}

/* Checks the PCERTP line in `text` (len bytes, NUL-terminated) and splits it in place into
 * name[i]=value[i], *count of them; NULL, or why not. Nothing is trusted: the whole line is
 * checked before the caller sets anything. */
static const char *parse_params(char *text, size_t len, char **name, char **value, int *count)
{
    char *p, *end, *next, *eq;
    uint32_t crc;
    size_t i, n;
    int k, nonce = 0;

    for (i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            return "a byte outside printable ASCII";
    if (len < 6 || memcmp(text, "PCERTP", 6) != 0 || (text[6] != ' ' && text[6] != '\0'))
        return "no PCERTP at the start";
    if ((end = strrchr(text, ' ')) == NULL || text + len - end != 9 || crc_text(end + 1, &crc) != 0)
        return "no CRC at the end";
    if (pcert_crc32(text, (size_t)(end - text)) != crc) return "CRC mismatch";
    *end = '\0';
    for (*count = 0, p = text + 6; p < end; p = next) {   /* p is at the space before a part */
        if ((next = strchr(++p, ' ')) == NULL) next = end;
        *next = '\0';
        if (p == next) return "an empty part (two spaces)";
        if (*count == PARAMS_MAX) return "more than 32 parameters";
        if ((eq = strchr(p, '=')) == NULL) {
            snprintf(why_buf, sizeof why_buf, "'%.40s' is not NAME=value", p);
            return why_buf;
        }
        *eq = '\0';
        n = (size_t)(eq - p);
        for (i = 0; i < n && (p[i] == '_' || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')
                              || (i > 0 && p[i] >= '0' && p[i] <= '9')); i++) continue;
        if (n == 0 || i < n) {
            snprintf(why_buf, sizeof why_buf, "'%.40s' is not a variable name", p);
            return why_buf;
        }
        /* Only the runtime's own variables: the snapshot's environment is not the host's to
         * rewrite (PATH, TZ, ...), and PCERT_PARAMS again would ask for a second line. */
        if (strncmp(p, "PCERT_", 6) != 0 || strcmp(p, "PCERT_PARAMS") == 0) {
            snprintf(why_buf, sizeof why_buf, "%.40s may not be set this way (only PCERT_ names, "
                     "not PCERT_PARAMS)", p);
            return why_buf;
        }
        if (strchr(eq + 1, '"') != NULL) {   /* the kernel command line's rule for a value */
            snprintf(why_buf, sizeof why_buf, "%.40s: a value may not hold '\"'", p);
            return why_buf;
        }
        for (k = 0; k < *count; k++)
            if (strcmp(name[k], p) == 0) {
                snprintf(why_buf, sizeof why_buf, "%.40s given twice", p);
                return why_buf;
            }
        nonce |= strcmp(p, "PCERT_NONCE") == 0;
        name[*count] = p, value[(*count)++] = eq + 1;
    }
    return nonce ? NULL : "no PCERT_NONCE (the run's nonce) among the parameters";
}

int pcert_params_read(int fd, char *why, size_t size)
{
    static char text[PARAMS_LINE_MAX + 1];
    char *name[PARAMS_MAX], *value[PARAMS_MAX], c;
    const char *bad;
    size_t len = 0;
    ssize_t n;
    int count, i;
    /* One byte at a time: whatever follows the \n (an agent request, on the same device) is
     * not ours to take. One line per boot, so the cost does not matter. */
    for (;;) {
        do n = read(fd, &c, 1); while (n < 0 && errno == EINTR);
        if (n < 0) {
            snprintf(why, size, "cannot read the channel: %s", pcert_errno_name(errno));
            return -1;
        }
        if (n == 0) {
            snprintf(why, size, "%s", "end of input before the end of the line");
            return -1;
        }
        if (c == '\n') break;
        if (len == PARAMS_LINE_MAX) {
            snprintf(why, size, "line longer than %d bytes", PARAMS_LINE_MAX);
            return -1;
        }
        text[len++] = c;
    }
    text[len] = '\0';
    if ((bad = parse_params(text, len, name, value, &count)) != NULL) {
        snprintf(why, size, "%s", bad);
        return -1;
    }
    for (i = 0; i < count; i++)
        if (setenv(name[i], value[i], 1) != 0) {
            snprintf(why, size, "setenv %.40s: %s", name[i], pcert_errno_name(errno));
            return -1;
        }
    return 0;
}
#endif
