/*
 * task.h -- the C layer of asyncspec's reference executor: task headers, the
 * waker vtable, the run queue and AtomicWaker.  Its API.
 *
 * Compiled by cffi in API mode into asyncspec.impl.task._task (build.py) and
 * driven from the Python package beside it (the step-by-step API) and from
 * asyncspec.impl.executor (a real single-threaded executor).  The executor
 * runs on one thread, but every waker entry point (clone, wake, wake_by_ref,
 * drop) and the run queue's push may be called from any thread, so the state
 * word and the reference count are C11 atomics, as in tokio's task state.
 *
 *   task.c          task headers: the registry and quarantine, references,
 *                   notify, the vtable, polling
 *   queue.c         the run queue
 *   atomic_waker.c  AtomicWaker, over the vtable alone
 *   internal.h      what those three share and nothing else sees
 *
 * Conventions: functions return 0 (or a count, or a small non-negative
 * result) on success and a negative AST_ERR_* code on failure; the vtable
 * functions return nothing (they are shaped like Rust's RawWakerVTable), so
 * they report a refused call in the calling thread's "last error" slot
 * (ast_last_error), which every public entry point clears first.  Nothing
 * aborts on bad input.
 *
 * The state word, one atomic u64 (as tokio's):
 *
 *      63                       6 5   4   3    2    1    0
 *     +--------------------------+-------+----+----+----+----+
 *     |  reference count         |  0 0  |CANC|COMP|NOTI|RUN |
 *     +--------------------------+-------+----+----+----+----+
 *
 *   RUNNING   (bit 0) the executor is polling the task
 *   NOTIFIED  (bit 1) a wake is pending: the task is in the run queue, or
 *                     (while RUNNING) will be put back there when the poll ends
 *   COMPLETE  (bit 2) the task finished (or was cancelled): it is never
 *                     polled again, wakes do nothing
 *   CANCELLED (bit 3) with COMPLETE: cancelled at executor shutdown
 *   refcount  (bits 6..63) AST_REF_ONE = 1 << 6 per reference
 *
 * References: each live waker instance holds one; the JoinHandle holds one
 * until it is dropped; the executor's owned-task set holds one until the task
 * completes or is cancelled; the run queue holds one per entry.  (The two
 * handle references are also recorded in `holds`, so dropping one twice is an
 * error, not a second decrement.)  When the count reaches 0 the task is freed
 * (into a quarantine: see task.c).
 *
 * The vtable (one static struct ast_vtable; data = the task header):
 *   clone        refcount += 1, calls.clone += 1; returns {data, vtable}
 *   wake         calls.wake += 1, notify, then release the instance's
 *                reference (no drop call is counted: wake consumes it)
 *   wake_by_ref  calls.wake_by_ref += 1, notify
 *   drop         calls.drop += 1, refcount -= 1
 * notify(task):
 *   COMPLETE          nothing
 *   RUNNING           set NOTIFIED (the poller re-queues it when the poll ends)
 *   NOTIFIED          nothing: it is queued already (wakes coalesce)
 *   otherwise         set NOTIFIED, refcount += 1 (the queue's), push on the tail
 * so a task is in the run queue at most once at any time.
 *
 * Polling (ast_queue_pop, ast_task_poll_begin, ast_task_poll_end): pop from
 * the head (the queue's reference passes to the poller); begin clears
 * NOTIFIED and sets RUNNING; the caller runs one step with the task's waker
 * borrowed (no clone, no call); end:
 *   ready    set COMPLETE, clear RUNNING, release the owned-set reference and
 *            the popped one
 *   pending  clear RUNNING; if NOTIFIED was set during the poll, push it again
 *            (the popped reference becomes the queue's), else release it
 * A wake during a poll is never lost and causes exactly one more poll.  A
 * popped task that is COMPLETE (after a cancellation) is not polled: begin
 * returns AST_BEGIN_COMPLETE and releases the popped reference.
 *
 * The part between the cffi markers is also the cffi declarations (see
 * impl/cdef.py): build.py reads it from here.
 */

#ifndef ASYNCSPEC_TASK_H
#define ASYNCSPEC_TASK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* cffi: begin */
#define AST_MAGIC_LIVE 0x4b534154u /* "TASK" */
#define AST_MAGIC_DEAD 0x44414544u /* "DEAD" */
#define AST_POISON 0xDD

#define AST_RUNNING 0x1ull
#define AST_NOTIFIED 0x2ull
#define AST_COMPLETE 0x4ull
#define AST_CANCELLED 0x8ull
#define AST_REF_SHIFT 6
#define AST_REF_ONE (1ull << AST_REF_SHIFT)
#define AST_FLAGS_MASK (AST_REF_ONE - 1)

/* calls[] indices */
#define AST_CALL_CLONE 0
#define AST_CALL_WAKE 1
#define AST_CALL_WAKE_BY_REF 2
#define AST_CALL_DROP 3

/* holds bits: the handle references a task still holds */
#define AST_HOLD_OWNED 0x1u
#define AST_HOLD_JOIN 0x2u

/* Operations, for error reports. */
#define AST_OP_CLONE 1
#define AST_OP_WAKE 2
#define AST_OP_WAKE_BY_REF 3
#define AST_OP_DROP 4
#define AST_OP_NEW_WAKER 5
#define AST_OP_POLL 6
#define AST_OP_JOIN_DROP 7
#define AST_OP_CANCEL 8
#define AST_OP_SPAWN 9
#define AST_OP_AW_REGISTER 10
#define AST_OP_AW_TAKE 11
#define AST_OP_READ 12

/* Error codes (functions return their negation). */
#define AST_ERR_FREED 1     /* the task's last reference was dropped */
#define AST_ERR_NOT_TASK 2  /* the data pointer is not a task header */
#define AST_ERR_REFCOUNT 3  /* reference count underflow */
#define AST_ERR_STATE 4     /* not allowed in the task's (or AtomicWaker's) state */
#define AST_ERR_NOMEM 5     /* out of memory */
#define AST_ERR_INVAL 6     /* bad argument (NULL, ...) */
#define AST_ERR_CLOSED 7    /* the run queue is closed */
#define AST_ERR_UNKNOWN 8   /* no task was ever issued with that id */

/* ast_task_info status */
#define AST_STATUS_UNKNOWN 0
#define AST_STATUS_LIVE 1
#define AST_STATUS_QUARANTINED 2
#define AST_STATUS_RELEASED 3

/* ast_task_poll_begin results */
#define AST_BEGIN_RUNNING 0
#define AST_BEGIN_COMPLETE 1
#define AST_NEXT_EMPTY 2 /* ast_queue_next: nothing queued */
/* ast_task_poll_end results */
#define AST_END_COMPLETE 0
#define AST_END_IDLE 1
#define AST_END_REQUEUED 2

/* AtomicWaker state bits */
#define AST_AW_WAITING 0
#define AST_AW_REGISTERING 1
#define AST_AW_WAKING 2

struct ast_vtable;
struct ast_raw_waker {
    const void *data;
    const struct ast_vtable *vtable;
};
struct ast_vtable {
    struct ast_raw_waker (*clone)(const void *);
    void (*wake)(const void *);
    void (*wake_by_ref)(const void *);
    void (*drop)(const void *);
};

struct ast_task;  /* a task header (internal.h): read its id with ast_task_id */
struct ast_queue; /* a run queue (internal.h) */

/* Caller-allocated, zero-initialized (zero is WAITING, no waker). */
struct ast_atomic_waker {
    _Atomic uintptr_t state;
    struct ast_raw_waker waker; /* vtable NULL: none stored */
};

struct ast_next {
    struct ast_task *task;
    uint64_t id;
};

struct ast_error {
    int code;
    int op;
    uint64_t task;
    const void *data;
};

struct ast_task_info {
    int status;
    uint32_t holds;
    uint64_t id;
    uint64_t state;
    uint64_t calls[4];
};

const struct ast_error *ast_last_error(void);

/* Registry and quarantine */
uint64_t ast_live_tasks(void);
uint64_t ast_quarantined(void);
uint64_t ast_quarantine_flush(void);

/* The run queue */
struct ast_queue *ast_queue_new(void);
int64_t ast_queue_close(struct ast_queue *q);
void ast_queue_release(struct ast_queue *q);
struct ast_task *ast_queue_pop(struct ast_queue *q);
size_t ast_queue_len(struct ast_queue *q);
size_t ast_queue_ids(struct ast_queue *q, uint64_t *out, size_t cap);
uint64_t ast_queue_tasks(struct ast_queue *q);
uint64_t ast_queue_spare_nodes(struct ast_queue *q);
void ast_queue_set_unpark_fd(struct ast_queue *q, int fd);
int ast_queue_park(struct ast_queue *q);
void ast_queue_unpark(struct ast_queue *q);

/* The vtable, and calls through it reporting the call's error */
const struct ast_vtable *ast_vtable(void);
int ast_raw_clone(const struct ast_raw_waker *w, struct ast_raw_waker *out);
int ast_raw_wake(const struct ast_raw_waker *w);
int ast_raw_wake_by_ref(const struct ast_raw_waker *w);
int ast_raw_drop(const struct ast_raw_waker *w);
int ast_raw_will_wake(const struct ast_raw_waker *a, const struct ast_raw_waker *b);

/* Tasks */
int ast_task_new(struct ast_queue *q, int schedule, struct ast_task **out);
int ast_task_waker(struct ast_task *t, struct ast_raw_waker *out);
int ast_task_poll_begin(struct ast_task *t);
int ast_queue_next(struct ast_queue *q, struct ast_next *out);
int ast_task_poll_end(struct ast_task *t, int ready);
int ast_task_release_join(struct ast_task *t);
int ast_task_cancel(struct ast_task *t);
uint64_t ast_task_id(const struct ast_task *t);
int ast_task_info(uint64_t id, struct ast_task_info *out);
const void *ast_task_ptr(uint64_t id);
int ast_task_waker_by_id(uint64_t id, struct ast_raw_waker *out);

/* AtomicWaker: the steps, and the whole operations made of them */
int ast_aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
int ast_aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
int ast_aw_register_end(struct ast_atomic_waker *aw);
int ast_aw_take_begin(struct ast_atomic_waker *aw);
int ast_aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out);
int ast_aw_register(struct ast_atomic_waker *aw, const struct ast_raw_waker *w);
int ast_aw_take(struct ast_atomic_waker *aw, struct ast_raw_waker *out);
int ast_aw_wake(struct ast_atomic_waker *aw);
int ast_aw_state(const struct ast_atomic_waker *aw);
struct ast_raw_waker ast_aw_peek(const struct ast_atomic_waker *aw);
int ast_aw_drop(struct ast_atomic_waker *aw);
/* cffi: end */

#endif
