/* pcert.h - what a test procedure may use: assertions, verdicts, the case table.
 *
 * A test case is a void function. The first assertion that fails ends it:
 *
 *     static void tc_example(void)
 *     {
 *         int fd;
 *         PCERT_REQUIRE(mkdir("d", 0700) == 0);        // UNRESOLVED if setup fails
 *         fd = open("d", O_RDONLY);
 *         PCERT_ASSERT_INT(fd, >=, 0);                  // FAIL "fd: got -1, want >= 0"
 *         PCERT_ASSERT_ERRNO(errno, 0);
 *     }
 *
 *     const struct pcert_case pcert_cases[] = {
 *         { "TC-example-001", tc_example, "", 0 },
 *         { "TC-timer-001", tc_timer, "_POSIX_TIMERS", 5 },
 *     };
 *     const unsigned pcert_ncases = 2;
 *
 * Operators are passed as tokens (==, !=, <, <=, >, >=) and appear in the
 * reason as written. Every helper records __FILE__ and __LINE__.
 */
#ifndef PCERT_H
#define PCERT_H

#include <errno.h>
#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define PCERT_NORETURN __attribute__((noreturn))
#define PCERT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PCERT_NORETURN
#define PCERT_PRINTF(f, a)
#endif

/* TET result codes, as carried in the `code` field of a result record. */
enum { PCERT_PASS = 0, PCERT_FAIL = 1, PCERT_UNRESOLVED = 2,
       PCERT_UNSUPPORTED = 4, PCERT_UNTESTED = 5 };

struct pcert_case {
    const char *id;          /* test case id, e.g. "TC-open-001" */
    void (*fn)(void);        /* the procedure */
    const char *options;     /* comma-separated option macro names, "" for none */
    unsigned timeout_s;      /* 0 = the run's default */
};

/* Defined by the generated case table. */
extern const struct pcert_case pcert_cases[];
extern const unsigned pcert_ncases;

/* errno right after the call under test (the generator saves it here). */
extern int pcert_saved_errno;
/* Text of the last call checked by PCERT_CHECK_RET_*, named by PCERT_CHECK_ERRNO. */
extern const char *pcert_last_call;

/* "ENOENT" for ENOENT, "0" for 0, "E?" for a value without a known name. */
const char *pcert_errno_name(int err);

/* Ends the running test case with a verdict and a printf-style reason. */
PCERT_NORETURN void pcert_end_case(int code, const char *file, int line,
                                   const char *fmt, ...) PCERT_PRINTF(4, 5);
/* Back ends of the macros below; call the macros instead. */
void pcert_assert_str_(const char *file, int line, const char *text,
                       const char *got, const char *want);
void pcert_assert_mem_(const char *file, int line, const char *text_a,
                       const char *text_b, const void *a, const void *b, size_t n);
PCERT_NORETURN void pcert_fail_ret_int_(const char *file, int line, const char *call,
                                        long long got, const char *op, long long want);
PCERT_NORETURN void pcert_fail_ret_ptr_(const char *file, int line, const char *call,
                                        const void *got, const char *op, const char *want);

#define PCERT_ASSERT(cond) do { if (!(cond)) \
    pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, "assertion failed: %s", #cond); } while (0)

#define PCERT_ASSERT_INT(a, op, b) do { \
    long long pcert_a_ = (long long)(a), pcert_b_ = (long long)(b); \
    if (!(pcert_a_ op pcert_b_)) pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, \
        "%s: got %lld, want %s %lld", #a, pcert_a_, #op, pcert_b_); } while (0)

#define PCERT_ASSERT_UINT(a, op, b) do { \
    unsigned long long pcert_a_ = (unsigned long long)(a), pcert_b_ = (unsigned long long)(b); \
    if (!(pcert_a_ op pcert_b_)) pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, \
        "%s: got %llu, want %s %llu", #a, pcert_a_, #op, pcert_b_); } while (0)

#define PCERT_ASSERT_ERRNO(e, want) do { int pcert_e_ = (e), pcert_w_ = (want); \
    if (pcert_e_ != pcert_w_) pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, \
        "errno: got %s (%d), want %s (%d)", pcert_errno_name(pcert_e_), pcert_e_, \
        pcert_errno_name(pcert_w_), pcert_w_); } while (0)

#define PCERT_ASSERT_STR(a, b) pcert_assert_str_(__FILE__, __LINE__, #a, (a), (b))

#define PCERT_ASSERT_MEM(a, b, n) pcert_assert_mem_(__FILE__, __LINE__, #a, #b, (a), (b), (n))

#define PCERT_ASSERT_PTR(p, op, q) do { \
    const void *pcert_p_ = (p), *pcert_q_ = (q); \
    if (!(pcert_p_ op pcert_q_)) pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, \
        "%s: got %p, want %s %p", #p, pcert_p_, #op, pcert_q_); } while (0)

#define PCERT_REQUIRE(cond) do { if (!(cond)) { int pcert_e_ = errno; \
    if (pcert_e_) pcert_end_case(PCERT_UNRESOLVED, __FILE__, __LINE__, \
        "setup: %s failed (errno %s)", #cond, pcert_errno_name(pcert_e_)); \
    pcert_end_case(PCERT_UNRESOLVED, __FILE__, __LINE__, "setup: %s failed", #cond); } } while (0)

#define PCERT_UNSUPPORTED(msg) pcert_end_case(PCERT_UNSUPPORTED, __FILE__, __LINE__, "%s", (msg))
#define PCERT_UNTESTED(msg) pcert_end_case(PCERT_UNTESTED, __FILE__, __LINE__, "%s", (msg))

/* Emitted by the generator after `ret = (call); pcert_saved_errno = errno;`. */
#define PCERT_CHECK_RET_INT(ret, op, value, call) do { \
    long long pcert_r_ = (long long)(ret), pcert_w_ = (long long)(value); \
    pcert_last_call = (call); \
    if (!(pcert_r_ op pcert_w_)) \
        pcert_fail_ret_int_(__FILE__, __LINE__, (call), pcert_r_, #op, pcert_w_); } while (0)

#define PCERT_CHECK_RET_PTR(ret, op, value, call) do { \
    const void *pcert_r_ = (ret), *pcert_w_ = (value); \
    pcert_last_call = (call); \
    if (!(pcert_r_ op pcert_w_)) \
        pcert_fail_ret_ptr_(__FILE__, __LINE__, (call), pcert_r_, #op, #value); } while (0)

#define PCERT_CHECK_ERRNO(err, want) do { int pcert_e_ = (err), pcert_w_ = (want); \
    if (pcert_e_ != pcert_w_) pcert_end_case(PCERT_FAIL, __FILE__, __LINE__, \
        "errno after %s: got %s (%d), want %s (%d)", \
        pcert_last_call ? pcert_last_call : "the call", pcert_errno_name(pcert_e_), \
        pcert_e_, pcert_errno_name(pcert_w_), pcert_w_); } while (0)

#endif
