/* pcert.c - the guest runtime: runs the compiled-in test cases and reports each
 * in framed records on stdout, as docs/protocol.md describes.
 *
 * Build with the generated case table (cases.c defines pcert_cases, pcert_ncases):
 *     gcc -std=c99 -D_POSIX_C_SOURCE=200809L -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE \
 *         -Wall -Wextra -O2 -static pcert.c cases.c -o init
 * Run: PCERT_NONCE=0123456789abcdef ./init    (or: ./init PCERT_NONCE=0123456789abcdef)
 * With PCERT_PARAMS the runtime first prints a `ready` record and waits for the run's
 * parameters on a channel (booting from a saved VM snapshot, docs/protocol.md).
 * Ports (targets/README.md): by default each test case runs in a child process with a
 * timeout. -DPCERT_NO_FORK (no processes): in-process; a failed assertion returns through
 * longjmp; a crash or hang ends the image, which the host boots again at PCERT_FIRST.
 * -DPCERT_MINIMAL (bare metal): PCERT_NO_FORK on C99 and sysconf alone: no scratch
 * directories, no uname (-DPCERT_SYSNAME='"..."', PCERT_RELEASE, PCERT_MACHINE name the
 * system), time from clock().
 */
#include "pcert.h"
#include "pcert_internal.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef PCERT_MINIMAL
#define PCERT_NO_FORK
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#endif
#ifndef PCERT_NO_FORK
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#endif
#if defined(__linux__) && !defined(PCERT_MINIMAL)
#define PCERT_LINUX_INIT      /* as PID 1: mount what tests need, power off at the end */
#include <sys/mount.h>
#include <sys/reboot.h>
#endif

#define OUT_CHUNK 512         /* bytes of test output per `out` record */
#define OUT_LIMIT 65536       /* output relayed per test case; the rest is only counted */
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

struct verdict { int code, line; char file[256], reason[1024]; };

int pcert_saved_errno;
const char *pcert_last_call;

static char nonce[17];
static const char *run_mode;   /* "agent" in agent mode (docs/agent.md), else NULL */
static int params_fd = -1;     /* the PCERT_PARAMS channel, kept open for the whole run */
#ifdef PCERT_NO_FORK
#define FORKS 0
static struct verdict case_verdict;   /* filled by pcert_end_case before the longjmp */
static jmp_buf case_env;
#else
#define FORKS 1
static int verdict_fd = -1;           /* in the child: write end of the verdict pipe */
#define VERDICT_FD_MIN 200            /* where the child moves it (below any usual RLIMIT_NOFILE) */
#endif
#ifndef PCERT_MINIMAL
static char start_cwd[PATH_MAX] = "/", tree_path[PATH_MAX];
#endif

/* ---- tables ---- */

#define NAMED(n) { n, #n }
static const struct named { int value; const char *name; } errno_names[] = {
    NAMED(E2BIG), NAMED(EACCES), NAMED(EADDRINUSE), NAMED(EADDRNOTAVAIL), NAMED(EAFNOSUPPORT),
    NAMED(EAGAIN), NAMED(EALREADY), NAMED(EBADF), NAMED(EBADMSG), NAMED(EBUSY), NAMED(ECANCELED),
    NAMED(ECHILD), NAMED(ECONNABORTED), NAMED(ECONNREFUSED), NAMED(ECONNRESET), NAMED(EDEADLK),
    NAMED(EDESTADDRREQ), NAMED(EDOM), NAMED(EDQUOT), NAMED(EEXIST), NAMED(EFAULT), NAMED(EFBIG),
    NAMED(EHOSTUNREACH), NAMED(EIDRM), NAMED(EILSEQ), NAMED(EINPROGRESS), NAMED(EINTR),
    NAMED(EINVAL), NAMED(EIO), NAMED(EISCONN), NAMED(EISDIR), NAMED(ELOOP), NAMED(EMFILE),
    NAMED(EMLINK), NAMED(EMSGSIZE), NAMED(EMULTIHOP), NAMED(ENAMETOOLONG), NAMED(ENETDOWN),
    NAMED(ENETRESET), NAMED(ENETUNREACH), NAMED(ENFILE), NAMED(ENOBUFS), NAMED(ENODATA),
    NAMED(ENODEV), NAMED(ENOENT), NAMED(ENOEXEC), NAMED(ENOLCK), NAMED(ENOLINK), NAMED(ENOMEM),
    NAMED(ENOMSG), NAMED(ENOPROTOOPT), NAMED(ENOSPC), NAMED(ENOSR), NAMED(ENOSTR), NAMED(ENOSYS),
    NAMED(ENOTCONN), NAMED(ENOTDIR), NAMED(ENOTEMPTY), NAMED(ENOTRECOVERABLE), NAMED(ENOTSOCK),
    NAMED(ENOTSUP), NAMED(ENOTTY), NAMED(ENXIO), NAMED(EOPNOTSUPP), NAMED(EOVERFLOW),
    NAMED(EOWNERDEAD), NAMED(EPERM), NAMED(EPIPE), NAMED(EPROTO), NAMED(EPROTONOSUPPORT),
    NAMED(EPROTOTYPE), NAMED(ERANGE), NAMED(EROFS), NAMED(ESPIPE), NAMED(ESRCH), NAMED(ESTALE),
    NAMED(ETIME), NAMED(ETIMEDOUT), NAMED(ETXTBSY), NAMED(EWOULDBLOCK), NAMED(EXDEV),
};

/* An undefined macro stringifies to its own name, a defined one to its value. */
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)
#define POSIX(x) { "_POSIX_" #x, TEXT(_POSIX_##x), _SC_##x, "_SC_" #x }
#define XOPEN(x) { "_XOPEN_" #x, TEXT(_XOPEN_##x), _SC_XOPEN_##x, "_SC_XOPEN_" #x }
static const struct option { const char *name, *value; int sc; const char *sc_name; } options[] = {
    POSIX(VERSION), POSIX(ADVISORY_INFO), POSIX(ASYNCHRONOUS_IO), POSIX(BARRIERS),
    POSIX(CLOCK_SELECTION), POSIX(CPUTIME), POSIX(FSYNC), POSIX(IPV6), POSIX(JOB_CONTROL),
    POSIX(MAPPED_FILES), POSIX(MEMLOCK), POSIX(MEMLOCK_RANGE), POSIX(MEMORY_PROTECTION),
    POSIX(MESSAGE_PASSING), POSIX(MONOTONIC_CLOCK), POSIX(PRIORITIZED_IO),
    POSIX(PRIORITY_SCHEDULING), POSIX(RAW_SOCKETS), POSIX(READER_WRITER_LOCKS),
    POSIX(REALTIME_SIGNALS), POSIX(REGEXP), POSIX(SAVED_IDS), POSIX(SEMAPHORES),
    POSIX(SHARED_MEMORY_OBJECTS), POSIX(SHELL), POSIX(SPAWN), POSIX(SPIN_LOCKS),
    POSIX(SPORADIC_SERVER), POSIX(SYNCHRONIZED_IO), POSIX(THREAD_ATTR_STACKADDR),
    POSIX(THREAD_ATTR_STACKSIZE), POSIX(THREAD_CPUTIME), POSIX(THREAD_PRIO_INHERIT),
    POSIX(THREAD_PRIO_PROTECT), POSIX(THREAD_PRIORITY_SCHEDULING), POSIX(THREAD_PROCESS_SHARED),
    POSIX(THREAD_ROBUST_PRIO_INHERIT), POSIX(THREAD_ROBUST_PRIO_PROTECT),
    POSIX(THREAD_SAFE_FUNCTIONS), POSIX(THREAD_SPORADIC_SERVER), POSIX(THREADS),
    POSIX(TIMEOUTS), POSIX(TIMERS), POSIX(TRACE), POSIX(TYPED_MEMORY_OBJECTS),
    { "_POSIX_ROBUST_MUTEXES", TEXT(_POSIX_ROBUST_MUTEXES), -1, NULL },   /* no _SC_ name */
    XOPEN(VERSION), XOPEN(CRYPT), XOPEN(ENH_I18N), XOPEN(REALTIME), XOPEN(REALTIME_THREADS),
    XOPEN(SHM), XOPEN(STREAMS), XOPEN(UNIX),
};

#define LIMIT(x) { _SC_##x, "_SC_" #x }
static const struct named limits[] = {
    LIMIT(PAGESIZE), LIMIT(CLK_TCK), LIMIT(OPEN_MAX), LIMIT(CHILD_MAX), LIMIT(ARG_MAX),
    LIMIT(NGROUPS_MAX), LIMIT(STREAM_MAX), LIMIT(TZNAME_MAX), LIMIT(LINE_MAX), LIMIT(RE_DUP_MAX),
    LIMIT(HOST_NAME_MAX), LIMIT(LOGIN_NAME_MAX), LIMIT(TTY_NAME_MAX), LIMIT(SYMLOOP_MAX),
    LIMIT(IOV_MAX), LIMIT(ATEXIT_MAX), LIMIT(GETPW_R_SIZE_MAX), LIMIT(GETGR_R_SIZE_MAX),
    LIMIT(RTSIG_MAX), LIMIT(SIGQUEUE_MAX), LIMIT(TIMER_MAX), LIMIT(DELAYTIMER_MAX),
    LIMIT(SEM_NSEMS_MAX), LIMIT(SEM_VALUE_MAX), LIMIT(MQ_OPEN_MAX), LIMIT(MQ_PRIO_MAX),
    LIMIT(AIO_MAX), LIMIT(AIO_LISTIO_MAX), LIMIT(AIO_PRIO_DELTA_MAX), LIMIT(THREAD_KEYS_MAX),
    LIMIT(THREAD_THREADS_MAX), LIMIT(THREAD_STACK_MIN), LIMIT(THREAD_DESTRUCTOR_ITERATIONS),
#ifdef _SC_NPROCESSORS_ONLN   /* not POSIX, but every libc we target has them */
    LIMIT(NPROCESSORS_CONF), LIMIT(NPROCESSORS_ONLN),
#endif
};

/* Where two names share a value (EAGAIN, EWOULDBLOCK) the first listed wins. */
const char *pcert_errno_name(int err)
{
    size_t i;
    if (err == 0) return "0";
    for (i = 0; i < COUNT(errno_names); i++)
        if (errno_names[i].value == err) return errno_names[i].name;
    return "E?";
}

/* 1 and the macro's compile-time value, or 0 when it is undefined. */
static int option_value(const struct option *o, long *value)
{
    const char *s = o->value;
    if (strcmp(o->name, s) == 0) return 0;
    while (*s == '(' || *s == ' ') s++;   /* some headers write (-1) */
    *value = strtol(s, NULL, 10);
    return 1;
}

/* Undefined or negative: absent; 0: ask sysconf; positive: always there. */
static int option_supported(const struct option *o)
{
    long v;
    if (!option_value(o, &v) || v < 0) return 0;
    return v > 0 || (o->sc >= 0 && sysconf(o->sc) > 0);
}

/* 0 when every option in the comma-separated list is there, else 1 and why. */
static int missing_option(const char *list, char *why, size_t size)
{
    const char *p = list ? list : "";
    size_t i, len;
    for (;; p += len) {
        p += strspn(p, ", ");
        if ((len = strcspn(p, ", ")) == 0) return 0;
        for (i = 0; i < COUNT(options); i++)
            if (strlen(options[i].name) == len && strncmp(options[i].name, p, len) == 0) break;
        if (i == COUNT(options)) {
            snprintf(why, size, "option %.*s not known to the runtime", (int)len, p);
            return 1;
        }
        if (!option_supported(&options[i])) {
            snprintf(why, size, "option %s not supported", options[i].name);
            return 1;
        }
    }
}

/* ---- records ---- */

static char rec[16384], out_buf[sizeof rec];   /* a record leaves in one write() */
static size_t rec_len;
static unsigned long seq;
#define REC_ROOM (sizeof rec - 16)   /* keeps space for " <crc>\n" */

/* CRC-32 with the zlib polynomial, bit by bit: records are short. */
static uint32_t crc32(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    int k;
    while (n--)
        for (crc ^= *p++, k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    return ~crc;
}

/* For pcert_agent.c (pcert_internal.h). */
const char *pcert_run_nonce(void) { return nonce; }
uint32_t pcert_crc32(const void *p, size_t n) { return crc32(p, n); }

#if defined(__GNUC__) || defined(__clang__)
/* Stand-ins for a build without pcert_agent.c (a unit test of this file); the image always
 * links it, and its definitions replace these. */
__attribute__((weak)) int pcert_agent_open(const char *channel, char *why, size_t size)
{
    (void)channel;
    snprintf(why, size, "%s", "agent mode not built into this binary");
    return -1;
}
__attribute__((weak)) long pcert_agent_serve(void) { return 0; }
__attribute__((weak)) int pcert_params_open(const char *channel, char *why, size_t size)
{
    (void)channel;
    snprintf(why, size, "%s", "PCERT_PARAMS not built into this binary");
    return -1;
}
__attribute__((weak)) int pcert_params_read(int fd, char *why, size_t size)
{
    (void)fd;
    snprintf(why, size, "%s", "PCERT_PARAMS not built into this binary");
    return -1;
}
#endif

/* Monotonic nanoseconds; where the OS has no monotonic clock, processor time (a port whose
 * clock() counts in other units than CLOCKS_PER_SEC says so: -DPCERT_CLOCKS_PER_SEC=...). */
#ifndef PCERT_CLOCKS_PER_SEC
#define PCERT_CLOCKS_PER_SEC CLOCKS_PER_SEC
#endif
static long long now_ns(void)
{
    const long long hz = PCERT_CLOCKS_PER_SEC;
    long long c;
#if defined(_POSIX_MONOTONIC_CLOCK) && _POSIX_MONOTONIC_CLOCK >= 0
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
#endif
    if ((c = (long long)clock()) < 0) return 0;
    return c / hz * 1000000000LL + c % hz * 1000000000LL / hz;
}

static void rec_begin(const char *kind)
{
    rec_len = (size_t)snprintf(rec, sizeof rec, "PCERT1 %s %lu %s", nonce, seq++, kind);
}

/* The bytes a record value carries as they are (A-Z a-z 0-9 . _ , : / + - @); any other is %XX. */
int pcert_plain_byte(unsigned c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("._,:/+-@", (int)c) != NULL);
}

/* Appends " key=value", the value percent-encoded. */
static void rec_mem(const char *key, const void *value, size_t n)
{
    const unsigned char *p = value;
    size_t i;
    if (rec_len + strlen(key) + 2 > REC_ROOM) return;
    rec_len += (size_t)sprintf(rec + rec_len, " %s=", key);
    for (i = 0; i < n && rec_len + 3 <= REC_ROOM; i++) {
        unsigned c = p[i];
        if (pcert_plain_byte(c))
            rec[rec_len++] = (char)c;
        else
            rec_len += (size_t)sprintf(rec + rec_len, "%%%02X", c);
    }
}

static void rec_str(const char *key, const char *value) { rec_mem(key, value, strlen(value)); }

static void rec_num(const char *key, long long value)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", value);
    rec_str(key, text);
}

/* Adds the CRC and the line end and writes the record out at once. */
static void rec_send(void)
{
    uint32_t crc = crc32((const unsigned char *)rec, rec_len);
    rec_len += (size_t)sprintf(rec + rec_len, " %08lx\n", (unsigned long)crc);
    fwrite(rec, 1, rec_len, stdout);
    fflush(stdout);   /* also keeps the buffer empty for fork() */
}

static void print_start(unsigned first)
{
    static const char *const uname_keys[] = { "sysname", "nodename", "release", "version", "machine" };
    char key[64];
    size_t i;
    long v;
#ifdef PCERT_MINIMAL
    const char *uname_values[] = { PCERT_SYSNAME, "", PCERT_RELEASE, "", PCERT_MACHINE };
#else
    struct utsname u;
    const char *uname_values[] = { u.sysname, u.nodename, u.release, u.version, u.machine };
    if (uname(&u) != 0) memset(&u, 0, sizeof u);
#endif
    rec_begin("start");
    rec_str("proto", "1");
    if (run_mode != NULL) rec_str("mode", run_mode);
    for (i = 0; i < COUNT(uname_keys); i++) rec_str(uname_keys[i], uname_values[i]);
#ifdef _SC_NPROCESSORS_ONLN
    rec_num("ncpu", sysconf(_SC_NPROCESSORS_ONLN));
#else
    rec_num("ncpu", -1);
#endif
    rec_num("ntests", pcert_ncases), rec_num("first", first), rec_num("fork", FORKS);
#ifndef PCERT_NO_FORK
    if (params_fd >= 0) rec_num("limits", 1);   /* it listens for a lower PCERT_END */
#endif
    rec_num("clock", now_ns());
    for (i = 0; i < COUNT(options); i++) {
        snprintf(key, sizeof key, "opt.%s", options[i].name);
        if (option_value(&options[i], &v)) rec_num(key, v);
        else rec_str(key, "undef");
    }
    for (i = 0; i < COUNT(options); i++) {
        if (options[i].sc < 0) continue;
        snprintf(key, sizeof key, "sc.%s", options[i].sc_name);
        rec_num(key, sysconf(options[i].sc));
    }
    for (i = 0; i < COUNT(limits); i++) {
        snprintf(key, sizeof key, "sc.%s", limits[i].name);
        rec_num(key, sysconf(limits[i].value));
    }
    rec_send();
}

/* ---- verdicts ---- */

static void set_verdict(struct verdict *v, int code, const char *fmt, ...) PCERT_PRINTF(3, 4);
static void set_verdict(struct verdict *v, int code, const char *fmt, ...)
{
    va_list ap;
    memset(v, 0, sizeof *v);
    v->code = code;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

void pcert_end_case(int code, const char *file, int line, const char *fmt, ...)
{
    struct verdict v;
    va_list ap;
    memset(&v, 0, sizeof v);
    v.code = code, v.line = line;
    snprintf(v.file, sizeof v.file, "%s", file ? file : "");
    va_start(ap, fmt);
    vsnprintf(v.reason, sizeof v.reason, fmt, ap);
    va_end(ap);
#ifdef PCERT_NO_FORK
    case_verdict = v;
    longjmp(case_env, 1);
#else
    fflush(stdout), fflush(stderr);   /* the test's output belongs before its result */
    if (write(verdict_fd, &v, sizeof v) < 0) {}   /* < PIPE_BUF: all or nothing */
    _exit(0);
#endif
}

static const char *saved_errno_text(char *buf, size_t size)
{
    if (pcert_saved_errno == 0) return "";
    snprintf(buf, size, " (errno %s)", pcert_errno_name(pcert_saved_errno));
    return buf;
}

void pcert_fail_ret_int_(const char *file, int line, const char *call,
                         long long got, const char *op, long long want)
{
    char err[48];
    pcert_end_case(PCERT_FAIL, file, line, "%s: got %lld%s, want %s %lld",
                   call, got, saved_errno_text(err, sizeof err), op, want);
}

void pcert_fail_ret_ptr_(const char *file, int line, const char *call,
                         const void *got, const char *op, const char *want)
{
    char err[48], text[32] = "NULL";   /* %p of NULL differs between libcs */
    if (got != NULL) snprintf(text, sizeof text, "%p", got);
    pcert_end_case(PCERT_FAIL, file, line, "%s: got %s%s, want %s %s",
                   call, text, saved_errno_text(err, sizeof err), op, want);
}

void pcert_assert_str_(const char *file, int line, const char *text, const char *got, const char *want)
{
    if (got == want || (got != NULL && want != NULL && strcmp(got, want) == 0)) return;
    pcert_end_case(PCERT_FAIL, file, line, "%s: got %s%s%s, want %s%s%s", text,
                   got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
                   want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
}

void pcert_assert_mem_(const char *file, int line, const char *text_a, const char *text_b,
                       const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != q[i])
            pcert_end_case(PCERT_FAIL, file, line, "%s: differs from %s at byte %lu: got 0x%02x, want 0x%02x",
                           text_a, text_b, (unsigned long)i, p[i], q[i]);
}

static const char *verdict_name(int code)
{
    static const char *names[] = { "PASS", "FAIL", "UNRESOLVED", NULL, "UNSUPPORTED", "UNTESTED" };
    return code >= 0 && code < (int)COUNT(names) ? names[code] : NULL;
}

/* ---- running one test case ---- */

#ifdef PCERT_NO_FORK
static void run_case(const struct pcert_case *c, unsigned idx, unsigned timeout_s, struct verdict *v)
{
    (void)idx, (void)timeout_s;   /* without processes the host reboots a hung image */
    pcert_last_call = NULL, pcert_saved_errno = 0;
    if (setjmp(case_env) == 0) {
        c->fn();
        set_verdict(v, PCERT_PASS, "%s", "");
    } else {
        *v = case_verdict;
    }
    fflush(stdout), fflush(stderr);   /* not fflush(NULL): picolibc 1.8 hangs in it */
}
#else
static const struct named signal_names[] = {
    NAMED(SIGABRT), NAMED(SIGALRM), NAMED(SIGBUS), NAMED(SIGCHLD), NAMED(SIGCONT), NAMED(SIGFPE),
    NAMED(SIGHUP), NAMED(SIGILL), NAMED(SIGINT), NAMED(SIGKILL), NAMED(SIGPIPE), NAMED(SIGPROF),
    NAMED(SIGQUIT), NAMED(SIGSEGV), NAMED(SIGSTOP), NAMED(SIGSYS), NAMED(SIGTERM), NAMED(SIGTRAP),
    NAMED(SIGTSTP), NAMED(SIGTTIN), NAMED(SIGTTOU), NAMED(SIGURG), NAMED(SIGUSR1), NAMED(SIGUSR2),
    NAMED(SIGVTALRM), NAMED(SIGXCPU), NAMED(SIGXFSZ),
};

static void describe_signal(int sig, char *text, size_t size)
{
    size_t i;
    for (i = 0; i < COUNT(signal_names); i++)
        if (signal_names[i].value == sig) {
            snprintf(text, size, "%s", signal_names[i].name);
            return;
        }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) snprintf(text, size, "SIGRTMIN+%d", sig - SIGRTMIN);
    else snprintf(text, size, "signal %d", sig);
}

static PCERT_NORETURN void child(const struct pcert_case *c, int out_fd, int vfd)
{
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd > 0) dup2(null_fd, 0), close(null_fd);   /* never read the console */
    dup2(out_fd, 1), dup2(out_fd, 2), close(out_fd);
    if (params_fd > 2) close(params_fd);   /* the host's channel is not the test's to use */
    signal(SIGPIPE, SIG_DFL);   /* the runner's choice, not the test's */
    /* Out of the way of descriptors a test picks itself (dup2(1, 7), say): which small number
     * the pipe got depends on what else the runner holds open, e.g. the PCERT_PARAMS channel. */
    if ((verdict_fd = fcntl(vfd, F_DUPFD_CLOEXEC, VERDICT_FD_MIN)) >= 0) close(vfd);
    else fcntl(vfd, F_SETFD, FD_CLOEXEC), verdict_fd = vfd;
    c->fn();
    pcert_end_case(PCERT_PASS, "", 0, "%s", "");
}

/* Relays one read of test output: 1 data, 0 end of file, -1 nothing there now. */
static int relay_output(int fd, unsigned idx, size_t *relayed, size_t *dropped)
{
    char buf[OUT_CHUNK];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return n < 0 && (errno == EINTR || errno == EAGAIN) ? -1 : 0;
    if (*relayed >= OUT_LIMIT) {
        *dropped += (size_t)n;
        return 1;
    }
    rec_begin("out"), rec_num("idx", idx), rec_mem("data", buf, (size_t)n), rec_send();
    *relayed += (size_t)n;
    return 1;
}

/* Reaps every exited child (as PID 1, orphans come to us); 1 once `pid` is among them. */
static int reap(pid_t pid, int *status)
{
    int st, found = 0;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == pid) *status = st, found = 1;
    return found;
}

static void run_case(const struct pcert_case *c, unsigned idx, unsigned timeout_s, struct verdict *v)
{
    int out[2] = { -1, -1 }, vp[2] = { -1, -1 }, status = 0, out_open = 1, exited, rounds;
    size_t relayed = 0, dropped = 0;
    long long deadline = now_ns() + timeout_s * 1000000000LL, left;
    struct verdict reported;
    struct pollfd pfd;
    char text[80];
    pid_t pid;

    if (pipe(out) != 0 || pipe(vp) != 0 || (pid = fork()) < 0) {
        set_verdict(v, PCERT_UNRESOLVED, "runtime: cannot start a child: %s", pcert_errno_name(errno));
        close(out[0]), close(out[1]), close(vp[0]), close(vp[1]);   /* -1 where not made */
        return;
    }
    if (pid == 0) {
        close(out[0]), close(vp[0]);
        child(c, out[1], vp[1]);
    }
    close(out[1]), close(vp[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK), fcntl(vp[0], F_SETFL, O_NONBLOCK);

    /* Relay output while waiting, so a chatty child never blocks on a full pipe. The pipe
     * ends with the child, unless a grandchild holds it: look at the child every 100 ms. */
    while (!(exited = reap(pid, &status)) && (left = (deadline - now_ns()) / 1000000) > 0) {
        pfd.fd = out_open ? out[0] : -1, pfd.events = POLLIN, pfd.revents = 0;
        if (poll(&pfd, 1, (int)(left < 100 ? left : out_open ? 100 : 1)) > 0
            && relay_output(out[0], idx, &relayed, &dropped) == 0)
            out_open = 0;
    }
    if (!exited) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    }
    /* What is still buffered; bounded, as a grandchild may keep writing. */
    for (rounds = 0; out_open && rounds < 256; rounds++)
        if (relay_output(out[0], idx, &relayed, &dropped) <= 0) break;
    if (dropped > 0) {
        snprintf(text, sizeof text, "\n[pcert: %lu more bytes of output not relayed]\n", (unsigned long)dropped);
        rec_begin("out"), rec_num("idx", idx), rec_str("data", text), rec_send();
    }

    if (!exited) {
        set_verdict(v, PCERT_UNRESOLVED, "hung: no result after %u s", timeout_s);
    } else if (WIFSIGNALED(status)) {
        describe_signal(WTERMSIG(status), text, sizeof text);
        set_verdict(v, PCERT_UNRESOLVED, "crashed: %s", text);
    } else if (read(vp[0], &reported, sizeof reported) == (ssize_t)sizeof reported) {
        *v = reported;   /* the first verdict written; a grandchild may have reported too */
        v->file[sizeof v->file - 1] = v->reason[sizeof v->reason - 1] = '\0';
    } else {
        set_verdict(v, PCERT_UNRESOLVED, "exited with status %d without a verdict",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    close(out[0]), close(vp[0]);
}
#endif

#ifndef PCERT_MINIMAL
/* ---- scratch directories ---- */

/* Removes tree_path (of length len) and all below it, best effort, following no links. */
static void remove_tree(size_t len)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    size_t n;
    if (lstat(tree_path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(tree_path);
        return;
    }
    chmod(tree_path, 0700);   /* a test may have left it unreadable */
    if ((d = opendir(tree_path)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            n = strlen(e->d_name);
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || len + n + 2 > sizeof tree_path)
                continue;
            tree_path[len] = '/';
            memcpy(tree_path + len + 1, e->d_name, n + 1);
            remove_tree(len + 1 + n);
            tree_path[len] = '\0';
        }
        closedir(d);
    }
    rmdir(tree_path);
}

/* Runs the test case in a fresh directory under $TMPDIR (or /tmp), removed afterwards. */
static void run_in_scratch_dir(const struct pcert_case *c, unsigned idx, unsigned timeout_s,
                               struct verdict *v)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
    if ((size_t)snprintf(tree_path, sizeof tree_path, "%s/pcert.XXXXXX", tmp) >= sizeof tree_path
        || mkdtemp(tree_path) == NULL || chdir(tree_path) != 0) {
        set_verdict(v, PCERT_UNRESOLVED, "runtime: no scratch directory: %s", pcert_errno_name(errno));
        return;
    }
    run_case(c, idx, timeout_s, v);
    if (chdir(start_cwd) != 0 && chdir("/") != 0) errno = 0;   /* nowhere else to go */
    remove_tree(strlen(tree_path));
}

/* As init: nothing is mounted yet, and fds 0-2 are closed without a /dev/console. */
static void prepare_init(void)
{
#ifdef PCERT_LINUX_INIT
    static const struct { const char *source, *dir, *type; } m[] = {
        { "proc", "/proc", "proc" }, { "devtmpfs", "/dev", "devtmpfs" },
        { "tmpfs", "/dev/shm", "tmpfs" }, { "tmpfs", "/tmp", "tmpfs" },
        { "mqueue", "/dev/mqueue", "mqueue" },
    };
    size_t i;
    for (i = 0; i < COUNT(m); i++)   /* a failure only means a test finds less */
        mkdir(m[i].dir, 0755), mount(m[i].source, m[i].dir, m[i].type, 0, NULL);
#endif
    while (fcntl(2, F_GETFD) < 0 && open("/dev/console", O_RDWR | O_NOCTTY) >= 0) continue;
}
#else
#define run_in_scratch_dir run_case   /* no directories: tests run where the image is */
#endif

/* ---- the run ---- */

/* Ends the runtime; as Linux's init, by powering the machine off. */
static PCERT_NORETURN void finish(int status)
{
    fflush(stdout), fflush(stderr);
#ifdef PCERT_LINUX_INIT
    if (getpid() == 1) {
        sync();
        reboot(RB_POWER_OFF);
        for (;;) pause();
    }
#endif
    exit(status);
}

/* `NAME=value` on the command line wins over the environment. */
static const char *param(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    int i;
    for (i = 1; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
    return getenv(name);
}

/* The decimal number in s, below UINT_MAX, into *v: 0, or -1 when s is not one. */
static int decimal(const char *s, unsigned *v)
{
    char *end;
    unsigned long n;
    if (s == NULL || *s < '0' || *s > '9') return -1;
    errno = 0;
    n = strtoul(s, &end, 10);
    if (*end != '\0' || errno != 0 || n > UINT_MAX) return -1;
    *v = (unsigned)n;
    return 0;
}

static unsigned number_param(int argc, char **argv, const char *name, unsigned dflt, unsigned min)
{
    const char *s = param(argc, argv, name);
    unsigned v;
    if (s == NULL || *s == '\0') return dflt;
    if (decimal(s, &v) != 0 || v < min) {
        fprintf(stderr, "pcert: %s must be a decimal number >= %u, got '%s'\n", name, min, s);
        finish(2);
    }
    return v;
}

static int selected(const char *only, const char *id)
{
    size_t n = strlen(id);
    const char *p;
    if (only == NULL || *only == '\0') return 1;
    for (p = only; p != NULL; p = strchr(p, ','), p = p ? p + 1 : NULL)
        if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static void run_one(unsigned idx, unsigned default_timeout)
{
    const struct pcert_case *c = &pcert_cases[idx];
    struct verdict v;
    long long start = now_ns(), end;

    rec_begin("begin"), rec_num("idx", idx), rec_str("id", c->id), rec_num("clock", start), rec_send();
    memset(&v, 0, sizeof v);
    if (missing_option(c->options, v.reason, sizeof v.reason)) v.code = PCERT_UNSUPPORTED;
    else run_in_scratch_dir(c, idx, c->timeout_s ? c->timeout_s : default_timeout, &v);
    if (verdict_name(v.code) == NULL)
        set_verdict(&v, PCERT_UNRESOLVED, "runtime: invalid verdict code %d", v.code);
    if (v.code == PCERT_PASS) memset(&v, 0, sizeof v);
    else if (v.reason[0] == '\0') snprintf(v.reason, sizeof v.reason, "%s", "(no reason given)");

    end = now_ns();
    rec_begin("result"), rec_num("idx", idx), rec_str("id", c->id);
    rec_str("verdict", verdict_name(v.code)), rec_num("code", v.code);
    rec_str("reason", v.reason), rec_str("file", v.file);
    if (v.line > 0) rec_num("line", v.line);
    else rec_str("line", "");
    rec_num("clock", end), rec_num("dur_ns", end - start), rec_send();
}

/* PCERT_NONCE into `nonce`, or the end of the run. */
static void read_nonce(int argc, char **argv)
{
    const char *s = param(argc, argv, "PCERT_NONCE");
    size_t n = 0;
    while (s != NULL && ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) n++;
    if (s == NULL || n != 16 || s[16] != '\0') {
        fprintf(stderr, "pcert: PCERT_NONCE must be 16 lower-case hex digits, set by the host\n");
        finish(2);
    }
    memcpy(nonce, s, 17);
}

/* PCERT_PARAMS (docs/protocol.md): a guest booted once and saved as a VM snapshot says `ready`
 * under its boot's nonce and waits; each restored copy then receives its own run's parameters,
 * one PCERTP line on the channel, into the environment. The run's records number from 0
 * again, under the run's nonce, as in any boot. */
static void wait_for_params(int argc, char **argv, const char *channel)
{
    char why[200];
    read_nonce(argc, argv);   /* the boot's: it frames the ready record */
    /* Opened before `ready`, so a host that has seen it may send at once. */
    if ((params_fd = pcert_params_open(channel, why, sizeof why)) >= 0) {
        rec_begin("ready"), rec_num("clock", now_ns()), rec_send();   /* flushed before we block */
        if (pcert_params_read(params_fd, why, sizeof why) == 0) {
#ifndef PCERT_MINIMAL   /* bare metal never gets here (its pcert_params_read refuses) */
            unsetenv("PCERT_PARAMS");
#endif
            seq = 0;
            return;
        }
    }
    fprintf(stderr, "pcert: PCERT_PARAMS: %s\n", why);
    finish(2);
}

/* Between test cases (docs/protocol.md, "Handing over the rest of a shard"): the host may send
 * one more PCERTP line on the PCERT_PARAMS channel with a lower PCERT_END, so that an idle
 * worker can run the rest. The runtime stops before the new end, or before `next` if it is
 * already past it, and confirms the end it keeps in a `limit` record. Anything else on the
 * channel ends the listening, not the run. */
#ifndef PCERT_NO_FORK   /* poll() is there */
static void take_new_end(unsigned next, unsigned *end)
{
    struct pollfd channel;
    char why[200] = "";
    const char *s;
    unsigned asked = *end;
    channel.fd = params_fd, channel.events = POLLIN, channel.revents = 0;
    if (params_fd < 0 || poll(&channel, 1, 0) != 1) return;
    unsetenv("PCERT_END");   /* the first line's: a line without one asks nothing */
    if (pcert_params_read(params_fd, why, sizeof why) != 0) {
        /* why says it */
    } else if ((s = getenv("PCERT_NONCE")) == NULL || strcmp(s, nonce) != 0) {
        snprintf(why, sizeof why, "%s", "not this run's nonce");
    } else if ((s = getenv("PCERT_END")) != NULL && decimal(s, &asked) != 0) {
        snprintf(why, sizeof why, "PCERT_END must be a decimal number, got '%.40s'", s);
    }
    unsetenv("PCERT_NONCE"), unsetenv("PCERT_END");
    if (why[0] != '\0') {
        fprintf(stderr, "pcert: PCERT_PARAMS: %s; no longer listening\n", why);
        close(params_fd), params_fd = -1;
    } else if (asked < *end) {
        *end = asked > next ? asked : next;
        rec_begin("limit"), rec_num("end", *end), rec_num("clock", now_ns()), rec_send();
    }
}

/* After its range (docs/protocol.md, "More work for an idle guest"): a guest that listens says
 * `idle` and waits, at most LINGER_MS, for one more PCERTP line. PCERT_FIRST, PCERT_END and
 * PCERT_STEP there give it another range, which it confirms in a `more` record and runs: the
 * rest of a slower worker's shard, without a boot. A line without PCERT_FIRST, silence, or
 * anything it cannot take ends the run. */
#define LINGER_MS 10000
static int more_work(unsigned *first, unsigned *end, unsigned *step)
{
    struct pollfd channel;
    char why[200] = "";
    const char *s;
    unsigned f = 0, e = 0, st = 1;
    int ready, given;
    if (params_fd < 0) return 0;
    rec_begin("idle"), rec_num("clock", now_ns()), rec_send();
    channel.fd = params_fd, channel.events = POLLIN, channel.revents = 0;
    while ((ready = poll(&channel, 1, LINGER_MS)) < 0 && errno == EINTR) {}
    if (ready != 1) return 0;
    unsetenv("PCERT_FIRST"), unsetenv("PCERT_END"), unsetenv("PCERT_STEP");
    if (pcert_params_read(params_fd, why, sizeof why) != 0) {
        /* why says it */
    } else if ((s = getenv("PCERT_NONCE")) == NULL || strcmp(s, nonce) != 0) {
        snprintf(why, sizeof why, "%s", "not this run's nonce");
    } else if (getenv("PCERT_FIRST") != NULL &&
               (decimal(getenv("PCERT_FIRST"), &f) != 0 || decimal(getenv("PCERT_END"), &e) != 0 ||
                ((s = getenv("PCERT_STEP")) != NULL && decimal(s, &st) != 0) ||
                st < 1 || f >= e || e > pcert_ncases)) {
        snprintf(why, sizeof why, "%s", "PCERT_FIRST, PCERT_END and PCERT_STEP must give a range of the plan");
    }
    given = getenv("PCERT_FIRST") != NULL;
    unsetenv("PCERT_NONCE"), unsetenv("PCERT_FIRST"), unsetenv("PCERT_END"), unsetenv("PCERT_STEP");
    if (why[0] != '\0') {
        fprintf(stderr, "pcert: PCERT_PARAMS: %s; no longer listening\n", why);
        close(params_fd), params_fd = -1;
        return 0;
    }
    if (!given) return 0;   /* the host has nothing more */
    if (st > pcert_ncases) st = pcert_ncases + 1;   /* idx += step can then never wrap */
    *first = f, *end = e, *step = st;
    rec_begin("more"), rec_num("first", f), rec_num("end", e), rec_num("step", st);
    rec_num("clock", now_ns()), rec_send();
    return 1;
}
#endif

int main(int argc, char **argv)
{
    const char *s, *only;
    unsigned first, end, step, timeout, idx, ran = 0;

#ifndef PCERT_MINIMAL
    if (getpid() == 1) prepare_init();
#endif
    setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);   /* before any output, the ready record too */
    if ((s = param(argc, argv, "PCERT_PARAMS")) != NULL && *s != '\0') {
        wait_for_params(argc, argv, s);
        argc = 1;   /* from here the environment alone: the snapshot boot's arguments are stale */
    }
    read_nonce(argc, argv);
    first = number_param(argc, argv, "PCERT_FIRST", 0, 0);
    end = number_param(argc, argv, "PCERT_END", pcert_ncases, 0);
    step = number_param(argc, argv, "PCERT_STEP", 1, 1);   /* a worker's shard: first, first+step, ... < end */
    if (step > pcert_ncases) step = pcert_ncases + 1;   /* idx += step can then never wrap */
    timeout = number_param(argc, argv, "PCERT_TIMEOUT", 10, 1);
    only = param(argc, argv, "PCERT_ONLY");
    if ((s = param(argc, argv, "PCERT_MODE")) != NULL && *s != '\0') {
        char why[160];
        if (strcmp(s, "agent") != 0) snprintf(why, sizeof why, "PCERT_MODE must be agent or empty, got '%.40s'", s);
        if (strcmp(s, "agent") != 0 || pcert_agent_open(param(argc, argv, "PCERT_AGENT"), why, sizeof why) != 0) {
            fprintf(stderr, "pcert: %s\n", why);
            finish(2);
        }
        run_mode = "agent";
    }
#ifndef PCERT_MINIMAL
    unsetenv("PCERT_NONCE");   /* test cases have no business knowing it */
    if (getcwd(start_cwd, sizeof start_cwd) == NULL) snprintf(start_cwd, sizeof start_cwd, "/");
#endif
#ifndef PCERT_NO_FORK
    signal(SIGPIPE, SIG_IGN);   /* a vanished console reader must not kill the runner */
#endif
    print_start(first);
    if (run_mode != NULL) ran = (unsigned)pcert_agent_serve();   /* requests answered */
    else for (;;) {
        for (idx = first; idx < end && idx < pcert_ncases; idx += step) {
#ifndef PCERT_NO_FORK
            take_new_end(idx, &end);
            if (idx >= end) break;
#endif
            if (selected(only, pcert_cases[idx].id)) run_one(idx, timeout), ran++;
        }
#ifndef PCERT_NO_FORK
        if (only == NULL && more_work(&first, &end, &step)) continue;
#endif
        break;
    }
    rec_begin("end"), rec_num("ran", ran), rec_num("clock", now_ns()), rec_send();
    finish(0);
}
