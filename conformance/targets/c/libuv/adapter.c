/*
 * libuv's uv_poll_t checked against the readiness spec: an `exec:` adapter
 * speaking asyncspec-target/1 (docs/protocol.md) on stdin/stdout, for area
 * "readiness", dialect "epoll".  Built by build.py next to this file; the
 * built-in target `libuv` runs it.  C11, libc and libuv only.
 *
 * Sources
 * -------
 * The adapter owns its sources exactly as conformance/areas/readiness/target.py's
 * `LinuxSources` does, and performs every source action with the same
 * system calls and the same observations: ["ok"], ["n", k] and
 * ["err", "EAGAIN"] with errno names as Python's errno.errorcode spells
 * them.  pipe_r / pipe_w are pipe2(O_NONBLOCK|O_CLOEXEC) (we keep the read or
 * the write end), sock an AF_UNIX stream socketpair, eventfd
 * eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC), file an unlinked mkstemp file.
 * Fd placement is LinuxSources's: slot i uses the numbers base + 8*i (ours),
 * +1 (the dup), +2 (the peer), base being 2048 when RLIMIT_NOFILE's soft
 * limit is above 4096 (or unlimited), else max(64, soft/2), far above what
 * the process otherwise uses; a closed number of ours stays closed, so a
 * call on "our fd" after close_ours really hits a closed fd.
 * The nested kinds (epoll_lt, epoll_et) are not offered: libuv has no
 * notion of one reactor inside another, and the adapter does not claim
 * "nested", so the runner never asks (if asked, the step is answered with
 * an "error" message).
 *
 * The reactor calls go to libuv, one uv_loop_t per example (open ... close):
 *
 *   register    uv_poll_init(loop, h, ours): one uv_poll_t per slot, malloc'd,
 *               then uv_poll_start(h, UV_READABLE|UV_WRITABLE
 *               (+UV_DISCONNECT for rdhup), cb); the token is kept beside
 *               the handle.  libuv's own errors are the observation:
 *               uv_poll_init asks epoll whether the fd can be watched
 *               (EBADF for a closed fd, EPERM for a regular file) and says
 *               EEXIST while another active handle of the loop watches it.
 *   reregister  uv_poll_start(h, new events, cb) on the slot's handle, with
 *               the new token.
 *   deregister  uv_poll_stop(h) + uv_close(h, free): the handle leaves the
 *               loop's watchers and epoll at once; its memory is freed by
 *               the close callback, which runs in the next uv_run (the next
 *               poll, or the example's close, which runs the loop until
 *               every closing handle is gone).  The loop is not run here:
 *               a uv_run would also poll and dispatch I/O callbacks outside
 *               a poll step.
 *   poll        uv_run(loop, UV_RUN_NOWAIT): exactly one uv__io_poll with
 *               timeout 0; the poll callbacks record (token, flags), and the
 *               step answers with them, sorted.  UV_READABLE -> EPOLLIN 1,
 *               UV_WRITABLE -> EPOLLOUT 4, UV_DISCONNECT -> EPOLLRDHUP 8192,
 *               UV_PRIORITIZED -> EPOLLPRI 2.  A negative status is how
 *               libuv passes on POLLERR (it calls back with UV_EBADF and
 *               events 0, after stopping the handle itself): it shows as
 *               EPOLLERR 8 alone, the only bit the callback carries.
 *               max_events has no libuv counterpart: every callback of the
 *               iteration is reported (the adapter does not claim "cap", so
 *               the runner only polls with room for every registration).
 *   errors that libuv cannot be asked about (it has no handle for the
 *               slot): reregister or deregister of a slot without a handle
 *               first asks libuv whether the fd could be watched at all (a
 *               uv_poll_init on a throwaway handle, closed at once: EBADF,
 *               EPERM), and otherwise answers ENOENT -- the adapter's
 *               bookkeeping, as epoll's order would have it.  The adapter
 *               does not claim "errors", so the runner never asks these.
 *
 * Closing a watched fd
 * --------------------
 * libuv's contract (uv_poll_t docs): "The user should not close a file
 * descriptor while it is being polled by an active poll handle ... the fd
 * can be safely closed immediately after a call to uv_poll_stop() or
 * uv_close()".  libuv applies epoll_ctl changes lazily, in the next loop
 * iteration, and abort()s there when one fails, so closing first would
 * crash it.  So close_ours on a registered slot does what a correct libuv
 * user does: uv_poll_stop + uv_close the slot's handle, then close(ours).
 * With a dup still open that drops the registration, which RDY-OFD-1 says
 * the file description keeps: the adapter does not claim "ofd" (as the
 * selectors and asyncio targets do not), and the runner never closes a
 * registered fd.
 *
 * What libuv does with epoll's flags (measured with libuv 1.44, read in
 * src/unix/epoll.c uv__io_poll and src/unix/poll.c uv__poll_io): it masks
 * epoll's events to the watcher's interest plus POLLERR|POLLHUP; an event
 * that is exactly POLLHUP (or POLLERR) gets the watcher's whole interest
 * OR-ed in; uv_poll then reports only READABLE/WRITABLE/DISCONNECT/
 * PRIORITIZED -- there is no hang-up flag -- and on POLLERR (without
 * POLLPRI) stops the handle and calls back with status UV_EBADF.  The
 * adapter passes all of that on unchanged: the differences from epoll are
 * findings of the conformance run, not something to paper over here.
 *
 * Features claimed in the hello, and why
 * --------------------------------------
 *   level    uv_poll_t is documented level-triggered ("the callback will be
 *            called again, as long as the fd remains readable or writable");
 *   flags    each callback says which of READABLE/WRITABLE/DISCONNECT it
 *            is about, so the event flags are judged (exec: targets are
 *            compared flag for flag whatever they claim; claiming "flags"
 *            makes the flag rules report what libuv does instead of n/a);
 *   rdhup    UV_DISCONNECT is EPOLLRDHUP, asked for and reported;
 *   eventfd  libuv polls any pollable fd; an eventfd is one;
 *   dup      a dup of a watched fd changes nothing for libuv.
 * Not claimed: edge and oneshot (uv_poll_t has neither), cap (no
 * max_events), errors (no max_events to be EINVAL, and ENOENT would be this
 * adapter's bookkeeping, not libuv's), ofd (see above), nested.
 * Measured against the spec (libuv 1.44.2, Linux 6.x): every claimed rule
 * holds but where a hang-up or an error is involved -- RDY-LT-1 (the
 * handle stops itself after one POLLERR callback), RDY-EV-2 (the error
 * callback carries no OUT/IN; a hang-up shows as the interest),
 * RDY-HUP-1 (no hang-up flag) and RDY-RDHUP-1 (a pipe's hang-up reported
 * as DISCONNECT when asked for).  tests/conformance/test_libuv_adapter.py has the exact
 * counterexamples.
 *
 * Diagnostics go to stderr only; stdout carries protocol lines and nothing
 * else.  Every fd and handle of an example is released on "close", and
 * on "bye" or end of input.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define PROTOCOL "asyncspec-target/1"
#define MAX_SLOTS 16
#define BLOCK 8 /* fd numbers per slot: ours, dup, peer */
#define MAX_IO (16 * 1024 * 1024)

/* epoll(7) bits, with the kernel's values (the protocol's vocabulary). */
#define F_IN 0x001
#define F_PRI 0x002
#define F_OUT 0x004
#define F_ERR 0x008
#define F_RDHUP 0x2000

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("libuv adapter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("libuv adapter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------------------ growable text */

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            die("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_fmt(Buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("formatting failed");
    buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void buf_json(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': buf_str(b, "\\\""); break;
        case '\\': buf_str(b, "\\\\"); break;
        case '\n': buf_str(b, "\\n"); break;
        case '\r': buf_str(b, "\\r"); break;
        case '\t': buf_str(b, "\\t"); break;
        default:
            if (*c < 0x20)
                buf_fmt(b, "\\u%04x", *c);
            else
                buf_put(b, (const char *)c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void send_line(Buf *b) {
    buf_put(b, "\n", 1);
    if (fwrite(b->p, 1, b->n, stdout) != b->n || fflush(stdout) != 0)
        die("cannot write to stdout: %s", strerror(errno));
    b->n = 0;
}

/* ---------------------------------------------------------------- JSON input */

/* A parsed value: the tree lives in one node array per message. */
typedef enum { J_NULL, J_BOOL, J_INT, J_NUM, J_STR, J_ARR, J_OBJ } JType;

typedef struct {
    JType t;
    bool b;
    long long i;
    char *s;     /* J_STR: the decoded string (NUL-terminated, in the message's arena) */
    char *key;   /* the member name when inside an object */
    int first;   /* J_ARR/J_OBJ: index of the first child, -1 when empty */
    int next;    /* the next sibling, -1 at the end */
} JNode;

typedef struct {
    const char *p;
    JNode *nodes;
    int n, cap;
    char *arena; /* decoded strings */
    size_t used;
    const char *err;
} JParser;

static void jskip(JParser *j) {
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int jnode(JParser *j, JType t) {
    if (j->n >= j->cap) {
        j->err = "too many values";
        return -1;
    }
    JNode *x = &j->nodes[j->n];
    memset(x, 0, sizeof *x);
    x->t = t;
    x->first = x->next = -1;
    return j->n++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *jstring(JParser *j) {
    /* at the opening quote; the decoded text never outgrows the source */
    char *out = j->arena + j->used, *w = out;
    j->p++;
    for (;;) {
        unsigned char c = (unsigned char)*j->p;
        if (c == 0) {
            j->err = "unterminated string";
            return NULL;
        }
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20) {
            j->err = "control character in a string";
            return NULL;
        }
        if (c != '\\') {
            *w++ = (char)c;
            j->p++;
            continue;
        }
        j->p++;
        char e = *j->p++;
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                int h = hexval(j->p[k]);
                if (h < 0) {
                    j->err = "bad \\u escape";
                    return NULL;
                }
                cp = cp * 16 + (unsigned)h;
            }
            j->p += 4;
            /* UTF-8 (a surrogate half is kept as is: names are ASCII anyway) */
            if (cp < 0x80) {
                *w++ = (char)cp;
            } else if (cp < 0x800) {
                *w++ = (char)(0xc0 | (cp >> 6));
                *w++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *w++ = (char)(0xe0 | (cp >> 12));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *w++ = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            j->err = "bad escape";
            return NULL;
        }
    }
    *w++ = 0;
    j->used = (size_t)(w - j->arena);
    return out;
}

static int jvalue(JParser *j, int depth);

static int jcontainer(JParser *j, int depth, bool object) {
    int self = jnode(j, object ? J_OBJ : J_ARR), last = -1;
    if (self < 0)
        return -1;
    j->p++;
    jskip(j);
    if (*j->p == (object ? '}' : ']')) {
        j->p++;
        return self;
    }
    for (;;) {
        char *key = NULL;
        jskip(j);
        if (object) {
            if (*j->p != '"') {
                j->err = "expected a member name";
                return -1;
            }
            if (!(key = jstring(j)))
                return -1;
            jskip(j);
            if (*j->p++ != ':') {
                j->err = "expected ':'";
                return -1;
            }
        }
        int child = jvalue(j, depth + 1);
        if (child < 0)
            return -1;
        j->nodes[child].key = key;
        if (last < 0)
            j->nodes[self].first = child;
        else
            j->nodes[last].next = child;
        last = child;
        jskip(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == (object ? '}' : ']')) {
            j->p++;
            return self;
        }
        j->err = object ? "expected ',' or '}'" : "expected ',' or ']'";
        return -1;
    }
}

static int jvalue(JParser *j, int depth) {
    if (depth > 32) {
        j->err = "nested too deeply";
        return -1;
    }
    jskip(j);
    char c = *j->p;
    if (c == '{' || c == '[')
        return jcontainer(j, depth, c == '{');
    if (c == '"') {
        int x = jnode(j, J_STR);
        if (x < 0)
            return -1;
        char *s = jstring(j);
        if (!s)
            return -1;
        j->nodes[x].s = s;
        return x;
    }
    if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        int x = jnode(j, J_BOOL);
        if (x < 0)
            return -1;
        j->nodes[x].b = c == 't';
        j->p += c == 't' ? 4 : 5;
        return x;
    }
    if (!strncmp(j->p, "null", 4)) {
        j->p += 4;
        return jnode(j, J_NULL);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *start = j->p;
        if (*j->p == '-')
            j->p++;
        while (*j->p >= '0' && *j->p <= '9')
            j->p++;
        bool integral = true;
        if (*j->p == '.' || *j->p == 'e' || *j->p == 'E') {
            integral = false;
            strtod(start, (char **)&j->p);
        }
        int x = jnode(j, integral ? J_INT : J_NUM);
        if (x < 0)
            return -1;
        if (integral) {
            errno = 0;
            j->nodes[x].i = strtoll(start, NULL, 10);
            if (errno == ERANGE)
                j->nodes[x].t = J_NUM;
        }
        return x;
    }
    j->err = "unexpected character";
    return -1;
}

/* Parse one line; returns the root index or -1 (j->err says why). */
static int jparse(JParser *j, const char *line, size_t len) {
    j->p = line;
    j->cap = (int)(len + 2);
    j->nodes = calloc((size_t)j->cap, sizeof(JNode));
    j->arena = malloc(len + 2);
    j->n = 0;
    j->used = 0;
    j->err = NULL;
    if (!j->nodes || !j->arena)
        die("out of memory");
    int root = jvalue(j, 0);
    if (root >= 0) {
        jskip(j);
        if (*j->p) {
            j->err = "text after the value";
            return -1;
        }
    }
    return root;
}

static void jfree(JParser *j) {
    free(j->nodes);
    free(j->arena);
    j->nodes = NULL;
    j->arena = NULL;
}

static JNode *jget(JParser *j, int obj, const char *key) {
    if (obj < 0 || j->nodes[obj].t != J_OBJ)
        return NULL;
    for (int c = j->nodes[obj].first; c >= 0; c = j->nodes[c].next)
        if (j->nodes[c].key && !strcmp(j->nodes[c].key, key))
            return &j->nodes[c];
    return NULL;
}

/* --------------------------------------------------------------- errno names */

static const struct {
    int code;
    const char *name;
} ERRNAMES[] = {
    {EAGAIN, "EAGAIN"},   {EPIPE, "EPIPE"},         {ECONNRESET, "ECONNRESET"}, {EBADF, "EBADF"},
    {EPERM, "EPERM"},     {EEXIST, "EEXIST"},       {ENOENT, "ENOENT"},         {EINVAL, "EINVAL"},
    {EMFILE, "EMFILE"},   {ENFILE, "ENFILE"},       {ENOMEM, "ENOMEM"},         {ENOSPC, "ENOSPC"},
    {EINTR, "EINTR"},     {EIO, "EIO"},             {ENOTCONN, "ENOTCONN"},     {ENOTSOCK, "ENOTSOCK"},
    {EACCES, "EACCES"},   {EFAULT, "EFAULT"},       {ESPIPE, "ESPIPE"},         {EISDIR, "EISDIR"},
    {ENOTTY, "ENOTTY"},   {ENOSYS, "ENOSYS"},       {EOPNOTSUPP, "ENOTSUP"},    {EDEADLK, "EDEADLOCK"},
    {ELOOP, "ELOOP"},     {EFBIG, "EFBIG"},         {ENXIO, "ENXIO"},           {EROFS, "EROFS"},
    {ENOTDIR, "ENOTDIR"}, {ECONNREFUSED, "ECONNREFUSED"},
};

/* The errno's name as Python's errno.errorcode spells it. */
static const char *errname(int code) {
    static char other[32];
    for (size_t k = 0; k < sizeof ERRNAMES / sizeof ERRNAMES[0]; k++)
        if (ERRNAMES[k].code == code)
            return ERRNAMES[k].name;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *s = strerrorname_np(code);
    if (s)
        return s;
#endif
    snprintf(other, sizeof other, "%d", code);
    return other;
}

/* ---------------------------------------------------------------- the state */

enum { K_NONE, K_PIPE_R, K_PIPE_W, K_SOCK, K_EVENTFD, K_FILE };

static const char *KIND_NAMES[] = {"none", "pipe_r", "pipe_w", "sock", "eventfd", "file"};

typedef struct Reg {
    uv_poll_t handle; /* first: the handle's address is the Reg's */
    int slot;
    long long token;
} Reg;

typedef struct {
    int kind;
    int ours, dup, peer; /* fixed numbers */
    bool ours_open, dup_open, peer_open;
    Reg *reg; /* the slot's live uv_poll_t, or NULL */
} Src;

typedef struct {
    long long token;
    int flags;
} Event;

static uv_loop_t loop;
static bool loop_open;
static Src srcs[MAX_SLOTS];
static int fd_base;
static int fd_limit;

static Event *events;
static size_t nevents, events_cap;

/* An observation: ["ok"], ["n", k], ["err", NAME], or the poll's events. */
typedef enum { O_OK, O_N, O_ERR, O_EVENTS, O_FAIL } ObsKind;

typedef struct {
    ObsKind kind;
    unsigned long long n;
    const char *err;
    char fail[256]; /* O_FAIL: the adapter could not perform the step */
} Obs;

static Obs ok(void) { return (Obs){.kind = O_OK}; }
static Obs count(unsigned long long n) { return (Obs){.kind = O_N, .n = n}; }
static Obs err(int code) { return (Obs){.kind = O_ERR, .err = errname(code)}; }
static Obs uverr(int rc) { return err(-rc); } /* libuv's codes are -errno on unix */

static Obs fail(const char *fmt, ...) {
    Obs o = {.kind = O_FAIL};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o.fail, sizeof o.fail, fmt, ap);
    va_end(ap);
    return o;
}

static void compute_fd_base(void) {
    /* conformance/areas/readiness/target.py _fd_base: the same numbers as LinuxSources. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 4096) {
        fd_base = 2048;
        fd_limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ? INT_MAX : (int)rl.rlim_cur;
    } else {
        fd_base = (int)rl.rlim_cur / 2 > 64 ? (int)rl.rlim_cur / 2 : 64;
        fd_limit = (int)rl.rlim_cur;
    }
}

/* ---------------------------------------------------------------- libuv side */

static void on_closed(uv_handle_t *h) { free(h); /* the Reg: handle is its first member */ }

static void on_poll(uv_poll_t *h, int status, int uvevents) {
    Reg *r = (Reg *)h;
    int flags = 0;
    if (status < 0)
        flags |= F_ERR; /* libuv's POLLERR: UV_EBADF, events 0, the handle stopped */
    if (uvevents & UV_READABLE)
        flags |= F_IN;
    if (uvevents & UV_PRIORITIZED)
        flags |= F_PRI;
    if (uvevents & UV_WRITABLE)
        flags |= F_OUT;
    if (uvevents & UV_DISCONNECT)
        flags |= F_RDHUP;
    if (nevents == events_cap) {
        size_t cap = events_cap ? events_cap * 2 : 16;
        Event *e = realloc(events, cap * sizeof *e);
        if (!e)
            die("out of memory");
        events = e;
        events_cap = cap;
    }
    events[nevents++] = (Event){r->token, flags};
}

/* Stop and close a slot's handle (memory freed by the close callback). */
static void drop_reg(Src *s) {
    if (!s->reg)
        return;
    uv_poll_stop(&s->reg->handle);
    uv_close((uv_handle_t *)&s->reg->handle, on_closed);
    s->reg = NULL;
}

/* libuv's verdict on watching fd at all: uv_poll_init on a throwaway handle. */
static int probe(int fd) {
    Reg *tmp = malloc(sizeof *tmp);
    if (!tmp)
        die("out of memory");
    int rc = uv_poll_init(&loop, &tmp->handle, fd);
    if (rc < 0) {
        free(tmp);
        return rc;
    }
    uv_close((uv_handle_t *)&tmp->handle, on_closed);
    return 0;
}

static void close_fd(int fd) {
    if (close(fd) != 0)
        note("close(%d): %s", fd, strerror(errno));
}

static void close_all(Src *s) {
    drop_reg(s);
    if (s->ours_open)
        close_fd(s->ours);
    if (s->dup_open)
        close_fd(s->dup);
    if (s->peer_open)
        close_fd(s->peer);
    s->ours_open = s->dup_open = s->peer_open = false;
}

static void example_open(void) {
    int rc = uv_loop_init(&loop);
    if (rc < 0)
        die("uv_loop_init: %s", uv_strerror(rc));
    loop_open = true;
    for (int i = 0; i < MAX_SLOTS; i++)
        srcs[i] = (Src){.kind = K_NONE};
    nevents = 0;
}

static void example_close(void) {
    if (!loop_open)
        return;
    for (int i = 0; i < MAX_SLOTS; i++) {
        close_all(&srcs[i]);
        srcs[i].kind = K_NONE;
    }
    /* Run the close callbacks of every handle closed in this example. */
    for (int round = 0; round < 100 && uv_loop_alive(&loop); round++)
        uv_run(&loop, UV_RUN_NOWAIT);
    nevents = 0;
    int rc = uv_loop_close(&loop);
    if (rc < 0)
        note("uv_loop_close: %s (a handle is still open)", uv_strerror(rc));
    loop_open = false;
}

/* ------------------------------------------------------------------- sources */

/* Move fd to exactly `number` (close-on-exec), as readiness.py _place does. */
static int place(int fd, int number) {
    if (fd == number)
        return 0;
    if (dup3(fd, number, O_CLOEXEC) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

static Obs do_create(int slot, const char *kind) {
    int k = K_NONE;
    for (int i = 1; i < (int)(sizeof KIND_NAMES / sizeof KIND_NAMES[0]); i++)
        if (!strcmp(kind, KIND_NAMES[i]))
            k = i;
    if (k == K_NONE) {
        if (!strcmp(kind, "epoll_lt") || !strcmp(kind, "epoll_et"))
            return fail("kind %s: nested epoll instances are not offered (the adapter does not claim \"nested\")", kind);
        return fail("unknown kind %s", kind);
    }
    Src *s = &srcs[slot];
    close_all(s);
    int base = fd_base + BLOCK * slot;
    if (base + BLOCK > fd_limit)
        return err(EMFILE);
    *s = (Src){.kind = k, .ours = base, .dup = base + 1, .peer = base + 2};
    int fds[2], rc;
    switch (k) {
    case K_PIPE_R:
    case K_PIPE_W:
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
            return err(errno);
        if (k == K_PIPE_W) {
            int t = fds[0];
            fds[0] = fds[1];
            fds[1] = t;
        }
        goto pair;
    case K_SOCK:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
            return err(errno);
    pair:
        if ((rc = place(fds[0], s->ours)) < 0) {
            close(fds[1]);
            return err(-rc);
        }
        s->ours_open = true;
        if ((rc = place(fds[1], s->peer)) < 0)
            return err(-rc);
        s->peer_open = true;
        return ok();
    case K_EVENTFD: {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
            return err(errno);
        if ((rc = place(fd, s->ours)) < 0)
            return err(-rc);
        s->ours_open = true;
        return ok();
    }
    case K_FILE: {
        const char *dir = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof path, "%s/asyncspec-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return err(errno);
        unlink(path);
        if ((rc = place(fd, s->ours)) < 0)
            return err(-rc);
        s->ours_open = true;
        return ok();
    }
    }
    return fail("unreachable kind %d", k);
}

static int uv_events(const char *interest, bool rdhup) {
    return (strchr(interest, 'r') ? UV_READABLE : 0) | (strchr(interest, 'w') ? UV_WRITABLE : 0) |
           (rdhup ? UV_DISCONNECT : 0);
}

static Obs do_register(int slot, long long token, const char *interest, bool rdhup) {
    Src *s = &srcs[slot];
    Reg *r = malloc(sizeof *r);
    if (!r)
        die("out of memory");
    r->slot = slot;
    r->token = token;
    int rc = uv_poll_init(&loop, &r->handle, s->ours);
    if (rc < 0) {
        free(r);
        return uverr(rc);
    }
    if (s->reg) {
        /* libuv said yes because the slot's handle is not active (libuv
         * stopped it after a POLLERR): it would watch the fd twice. */
        uv_close((uv_handle_t *)&r->handle, on_closed);
        return err(EEXIST);
    }
    rc = uv_poll_start(&r->handle, uv_events(interest, rdhup), on_poll);
    if (rc < 0) {
        uv_close((uv_handle_t *)&r->handle, on_closed);
        return uverr(rc);
    }
    s->reg = r;
    return ok();
}

static Obs not_registered(Src *s) {
    int rc = probe(s->ours);
    return rc < 0 ? uverr(rc) : err(ENOENT);
}

static Obs do_reregister(int slot, long long token, const char *interest, bool rdhup) {
    Src *s = &srcs[slot];
    if (!s->reg)
        return not_registered(s);
    int rc = uv_poll_start(&s->reg->handle, uv_events(interest, rdhup), on_poll);
    if (rc < 0)
        return uverr(rc);
    s->reg->token = token;
    return ok();
}

static Obs do_deregister(int slot) {
    Src *s = &srcs[slot];
    if (!s->reg)
        return not_registered(s);
    drop_reg(s);
    return ok();
}

static int cmp_event(const void *a, const void *b) {
    const Event *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return (x->flags > y->flags) - (x->flags < y->flags);
}

static Obs do_poll(void) {
    nevents = 0;
    uv_run(&loop, UV_RUN_NOWAIT);
    qsort(events, nevents, sizeof *events, cmp_event);
    return (Obs){.kind = O_EVENTS};
}

static int live_fd(Src *s) { return s->ours_open ? s->ours : s->dup; }

static char *filled(long long n, char c) {
    char *p = malloc(n > 0 ? (size_t)n : 1);
    if (!p)
        die("out of memory");
    memset(p, c, n > 0 ? (size_t)n : 1);
    return p;
}

static Obs write_bytes(int fd, long long n, char c) {
    char *p = filled(n, c);
    ssize_t k = write(fd, p, (size_t)n);
    int e = errno;
    free(p);
    return k < 0 ? err(e) : count((unsigned long long)k);
}

static Obs read_bytes(int fd, long long n) {
    char *p = filled(n, 0);
    ssize_t k = read(fd, p, (size_t)n);
    int e = errno;
    free(p);
    return k < 0 ? err(e) : count((unsigned long long)k);
}

static Obs eventfd_add(int fd, unsigned long long n) {
    uint64_t v = n;
    ssize_t k = write(fd, &v, sizeof v);
    if (k < 0)
        return err(errno);
    if (k != (ssize_t)sizeof v)
        return fail("short eventfd write (%zd bytes)", k);
    return count(n);
}

static Obs do_read_ours(int slot, long long n) {
    Src *s = &srcs[slot];
    if (s->kind == K_EVENTFD) {
        uint64_t v;
        ssize_t k = read(live_fd(s), &v, sizeof v);
        if (k < 0)
            return err(errno);
        if (k != (ssize_t)sizeof v)
            return fail("short eventfd read (%zd bytes)", k);
        return count(v);
    }
    return read_bytes(live_fd(s), n);
}

static Obs do_write_ours(int slot, long long n) {
    Src *s = &srcs[slot];
    if (s->kind == K_EVENTFD)
        return eventfd_add(live_fd(s), (unsigned long long)n);
    return write_bytes(live_fd(s), n, 'o');
}

static Obs do_fill_ours(int slot) {
    Src *s = &srcs[slot];
    int fd = live_fd(s);
    if (s->kind == K_EVENTFD) {
        /* The largest amounts that still fit: the counter ends at exactly
         * 0xfffffffffffffffe without reading it. */
        for (uint64_t step = (uint64_t)1 << 63; step;) {
            if (write(fd, &step, sizeof step) < 0) {
                if (errno != EAGAIN)
                    return err(errno);
                step >>= 1;
            }
        }
        return ok();
    }
    static const size_t chunks[] = {65536, 4096, 1};
    char *p = filled(65536, 'f');
    for (size_t c = 0; c < 3; c++) {
        for (;;) {
            if (write(fd, p, chunks[c]) < 0) {
                if (errno == EAGAIN)
                    break;
                int e = errno;
                free(p);
                return err(e);
            }
        }
    }
    free(p);
    return ok();
}

static Obs do_drain_peer(int slot) {
    int fd = srcs[slot].peer;
    char *p = filled(65536, 0);
    for (;;) {
        ssize_t k = read(fd, p, 65536);
        if (k == 0)
            break;
        if (k < 0) {
            int e = errno;
            if (e == EAGAIN)
                break;
            free(p);
            return err(e);
        }
    }
    free(p);
    return ok();
}

static Obs closing(int fd, bool *open) {
    if (close(fd) != 0)
        return err(errno);
    *open = false;
    return ok();
}

static Obs do_close_ours(int slot) {
    Src *s = &srcs[slot];
    /* libuv: stop (and close) the handle before the fd goes (see the head). */
    drop_reg(s);
    return closing(s->ours, &s->ours_open);
}

static Obs do_dup_ours(int slot) {
    Src *s = &srcs[slot];
    if (dup3(s->ours, s->dup, O_CLOEXEC) < 0)
        return err(errno);
    s->dup_open = true;
    return ok();
}

static Obs do_shutdown_peer(int slot) {
    if (shutdown(srcs[slot].peer, SHUT_WR) < 0)
        return err(errno);
    return ok();
}

/* --------------------------------------------------------------- dispatching */

typedef struct {
    JParser *j;
    int args;
    char why[200];
} Args;

static bool arg_int(Args *a, const char *key, long long *out) {
    JNode *x = jget(a->j, a->args, key);
    if (!x || x->t != J_INT) {
        snprintf(a->why, sizeof a->why, "argument %s must be an integer", key);
        return false;
    }
    *out = x->i;
    return true;
}

static bool arg_str(Args *a, const char *key, const char **out) {
    JNode *x = jget(a->j, a->args, key);
    if (!x || x->t != J_STR) {
        snprintf(a->why, sizeof a->why, "argument %s must be a string", key);
        return false;
    }
    *out = x->s;
    return true;
}

static bool arg_bool(Args *a, const char *key, bool *out) {
    JNode *x = jget(a->j, a->args, key);
    if (!x || x->t != J_BOOL) {
        snprintf(a->why, sizeof a->why, "argument %s must be a boolean", key);
        return false;
    }
    *out = x->b;
    return true;
}

static Obs perform(const char *action, Args *a) {
    long long slot = -1, n = 0, token = 0;
    const char *str = NULL, *mode = NULL;
    bool oneshot = false, rdhup = false;

    if (!strcmp(action, "poll")) {
        if (!arg_int(a, "max_events", &n))
            return fail("%s", a->why);
        /* No libuv counterpart to max_events (see the head). */
        return do_poll();
    }
    if (!arg_int(a, "slot", &slot))
        return fail("%s", a->why);
    if (slot < 0 || slot >= MAX_SLOTS)
        return fail("slot %lld out of range 0..%d", slot, MAX_SLOTS - 1);
    int i = (int)slot;
    Src *s = &srcs[i];
    if (!strcmp(action, "create")) {
        if (!arg_str(a, "kind", &str))
            return fail("%s", a->why);
        return do_create(i, str);
    }
    if (s->kind == K_NONE)
        return fail("slot %d holds no source", i);
    bool sized = !strcmp(action, "write_peer") || !strcmp(action, "read_ours") || !strcmp(action, "write_ours") ||
                 !strcmp(action, "read_peer");
    if (sized) {
        if (!arg_int(a, "n", &n))
            return fail("%s", a->why);
        if (n < 0 || n > MAX_IO)
            return fail("n = %lld out of range 0..%d", n, MAX_IO);
    }
    if (!strcmp(action, "register") || !strcmp(action, "reregister")) {
        if (!arg_int(a, "token", &token) || !arg_str(a, "interest", &str) || !arg_str(a, "mode", &mode) ||
            !arg_bool(a, "oneshot", &oneshot) || !arg_bool(a, "rdhup", &rdhup))
            return fail("%s", a->why);
        if (strcmp(mode, "lt"))
            return fail("mode %s: libuv's uv_poll_t is level-triggered only (no \"edge\" claimed)", mode);
        if (oneshot)
            return fail("oneshot: uv_poll_t has no oneshot mode (no \"oneshot\" claimed)");
        if (strspn(str, "rw") != strlen(str) || !*str)
            return fail("interest %s is not r, w or rw", str);
        if (!strcmp(action, "reregister"))
            return do_reregister(i, token, str, rdhup);
        return do_register(i, token, str, rdhup);
    }
    if (!strcmp(action, "deregister"))
        return do_deregister(i);
    if (!strcmp(action, "write_peer"))
        return write_bytes(s->peer, n, 'p');
    if (!strcmp(action, "read_ours"))
        return do_read_ours(i, n);
    if (!strcmp(action, "write_ours"))
        return do_write_ours(i, n);
    if (!strcmp(action, "fill_ours"))
        return do_fill_ours(i);
    if (!strcmp(action, "read_peer"))
        return read_bytes(s->peer, n);
    if (!strcmp(action, "drain_peer"))
        return do_drain_peer(i);
    if (!strcmp(action, "shutdown_peer"))
        return do_shutdown_peer(i);
    if (!strcmp(action, "close_peer"))
        return closing(s->peer, &s->peer_open);
    if (!strcmp(action, "dup_ours"))
        return do_dup_ours(i);
    if (!strcmp(action, "close_ours"))
        return do_close_ours(i);
    if (!strcmp(action, "close_dup"))
        return closing(s->dup, &s->dup_open);
    return fail("unknown action %s", action);
}

static void answer(Buf *out, long long seq, Obs o) {
    if (o.kind == O_FAIL) {
        buf_fmt(out, "{\"type\": \"error\", \"seq\": %lld, \"message\": ", seq);
        buf_json(out, o.fail);
        buf_str(out, "}");
        send_line(out);
        return;
    }
    buf_fmt(out, "{\"type\": \"result\", \"seq\": %lld, \"obs\": ", seq);
    switch (o.kind) {
    case O_OK: buf_str(out, "[\"ok\"]"); break;
    case O_N: buf_fmt(out, "[\"n\", %llu]", o.n); break;
    case O_ERR:
        buf_str(out, "[\"err\", ");
        buf_json(out, o.err);
        buf_str(out, "]");
        break;
    case O_EVENTS:
        buf_str(out, "[");
        for (size_t k = 0; k < nevents; k++)
            buf_fmt(out, "%s[%lld, %d]", k ? ", " : "", events[k].token, events[k].flags);
        buf_str(out, "]");
        break;
    default: break;
    }
    buf_str(out, "}");
    send_line(out);
}

static const char *type_of(JParser *j, int root) {
    JNode *t = jget(j, root, "type");
    return t && t->t == J_STR ? t->s : NULL;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a write to a closed pipe is EPIPE, as in Python */
    compute_fd_base();
    Buf out = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        JParser j;
        int root = jparse(&j, line, (size_t)len);
        if (root < 0 || j.nodes[root].t != J_OBJ)
            die("not a JSON object (%s): %.80s", j.err ? j.err : "not an object", line);
        const char *type = type_of(&j, root);
        if (!type)
            die("a message without a type: %.80s", line);
        if (!strcmp(type, "hello")) {
            JNode *p = jget(&j, root, "protocol");
            if (!p || p->t != J_STR || strcmp(p->s, PROTOCOL))
                die("unsupported protocol (this adapter speaks %s)", PROTOCOL);
            buf_str(&out, "{\"type\": \"hello\", \"protocol\": \"" PROTOCOL "\", \"name\": \"libuv\", "
                          "\"area\": \"readiness\", \"dialect\": \"epoll\", "
                          "\"features\": [\"dup\", \"eventfd\", \"flags\", \"level\", \"rdhup\"], \"description\": ");
            char desc[512];
            snprintf(desc, sizeof desc,
                     "libuv %s uv_poll_t, one uv_run(UV_RUN_NOWAIT) per poll: level-triggered "
                     "READABLE/WRITABLE/DISCONNECT (EPOLLRDHUP); a negative status shows as EPOLLERR. "
                     "No edge, oneshot, max_events or epoll_ctl errors to claim.",
                     uv_version_string());
            buf_json(&out, desc);
            buf_str(&out, "}");
            send_line(&out);
        } else if (!strcmp(type, "open")) {
            example_close(); /* an example left open is closed first */
            example_open();
            buf_str(&out, "{\"type\": \"opened\"}");
            send_line(&out);
        } else if (!strcmp(type, "step")) {
            JNode *seq = jget(&j, root, "seq"), *action = jget(&j, root, "action"), *args = jget(&j, root, "args");
            if (!seq || seq->t != J_INT)
                die("a step without an integer seq: %.80s", line);
            Obs o;
            if (!loop_open)
                o = fail("a step outside an example (no open)");
            else if (!action || action->t != J_STR || !args || args->t != J_OBJ)
                o = fail("a step needs an action (string) and args (object)");
            else {
                Args a = {.j = &j, .args = (int)(args - j.nodes)};
                o = perform(action->s, &a);
            }
            answer(&out, seq->i, o);
        } else if (!strcmp(type, "close")) {
            example_close();
            buf_str(&out, "{\"type\": \"closed\"}");
            send_line(&out);
        } else if (!strcmp(type, "bye")) {
            jfree(&j);
            break;
        } else {
            die("unknown message type %s", type);
        }
        jfree(&j);
    }
    example_close();
    free(line);
    free(out.p);
    free(events);
    return 0;
}
