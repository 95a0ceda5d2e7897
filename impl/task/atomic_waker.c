/*
 * atomic_waker.c -- AtomicWaker, futures-rs's algorithm over the waker
 * vtable alone (see task.h).
 *
 * State bits WAITING = 0, REGISTERING = 1, WAKING = 2; the algorithm is also
 * split into its atomic steps so a single-threaded driver can interleave a
 * register and a wake step by step:
 *   register_begin  CAS WAITING -> REGISTERING; on failure, if WAKING was
 *                   seen, wake_by_ref the new waker (a wake is in progress
 *                   on the old one); returns the state seen (0: go on)
 *   register_store  keep the stored waker if it will_wake the new one, else
 *                   clone the new one, store it, drop the old one
 *   register_end    CAS REGISTERING -> WAITING; if that fails a wake came in
 *                   (WAKING is set): take the waker, swap to WAITING, wake it
 *   take_begin      fetch_or WAKING; returns the previous state
 *   take_end        if that was WAITING: take the stored waker, clear WAKING
 * register = begin [+ store + end], take = take_begin + take_end,
 * wake = take + wake of the taken waker: the whole operations are these steps.
 */

#include "internal.h"

static void aw_call_wake(struct ast_raw_waker w)
{
    if (w.vtable)
        w.vtable->wake(w.data);
}

/* The steps, without clearing the thread's error slot (the whole
 * operations run several steps and report the first error); the public
 * ast_aw_* step functions below clear it, then run one. */

/* CAS WAITING -> REGISTERING.  Returns the state seen: AST_AW_WAITING means
 * the caller holds the registering lock and goes on with register_store and
 * register_end.  If a wake was in progress (WAKING seen), the new waker is
 * woken by reference here: the wake may be taking the old one. */
static int aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    if (!aw || raw_ok(w, AST_OP_AW_REGISTER) < 0)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    uintptr_t seen = AST_AW_WAITING;
    if (atomic_compare_exchange_strong_explicit(&aw->state, &seen, AST_AW_REGISTERING, memory_order_acquire,
                                                memory_order_acquire))
        return AST_AW_WAITING;
    if (seen == AST_AW_WAKING)
        w->vtable->wake_by_ref(w->data);
    /* REGISTERING (| WAKING): another register holds the lock; this one
     * does nothing (futures-rs: concurrent registers are a caller error). */
    return err_result() ? err_result() : (int)seen;
}

/* With the registering lock held: keep the stored waker if it will wake
 * the same task (futures-rs skips the clone then), else clone w, store the
 * clone and drop the old one.  Returns 1 if it cloned, 0 if it kept the
 * stored one. */
static int aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    if (!aw || raw_ok(w, AST_OP_AW_REGISTER) < 0)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    if (!(atomic_load_explicit(&aw->state, memory_order_relaxed) & AST_AW_REGISTERING))
        return err_set(AST_OP_AW_REGISTER, AST_ERR_STATE, NULL, aw);
    if (aw->waker.vtable && ast_raw_will_wake(&aw->waker, w))
        return 0;
    struct ast_raw_waker fresh = w->vtable->clone(w->data);
    if (err_result() < 0)
        return err_result();
    struct ast_raw_waker old = aw->waker;
    aw->waker = fresh;
    if (old.vtable)
        old.vtable->drop(old.data);
    return err_result() ? err_result() : 1;
}

/* CAS REGISTERING -> WAITING.  0: done.  1: a wake arrived meanwhile (it
 * saw REGISTERING and left the waker to us): the stored waker was taken,
 * the state reset to WAITING, and the waker woken. */
static int aw_register_end(struct ast_atomic_waker *aw)
{
    if (!aw)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    uintptr_t seen = AST_AW_REGISTERING;
    if (atomic_compare_exchange_strong_explicit(&aw->state, &seen, AST_AW_WAITING, memory_order_acq_rel,
                                                memory_order_acquire))
        return 0;
    if (seen != (AST_AW_REGISTERING | AST_AW_WAKING))
        return err_set(AST_OP_AW_REGISTER, AST_ERR_STATE, NULL, aw);
    struct ast_raw_waker w = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_exchange_explicit(&aw->state, AST_AW_WAITING, memory_order_acq_rel);
    aw_call_wake(w);
    return err_result() ? err_result() : 1;
}

/* fetch_or WAKING; returns the previous state. */
static int aw_take_begin(struct ast_atomic_waker *aw)
{
    if (!aw)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    return (int)atomic_fetch_or_explicit(&aw->state, AST_AW_WAKING, memory_order_acq_rel);
}

/* If prev (take_begin's result) was WAITING, this take owns the cell: take
 * the stored waker into *out and clear WAKING.  Returns 1 if a waker was
 * taken, 0 if not (none stored, or a register or another take was in
 * progress: a register in progress wakes in its register_end). */
static int aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out)
{
    if (!aw || !out)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    out->data = NULL;
    out->vtable = NULL;
    if (prev != AST_AW_WAITING)
        return 0;
    *out = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_fetch_and_explicit(&aw->state, ~(uintptr_t)AST_AW_WAKING, memory_order_release);
    return out->vtable != NULL;
}

int ast_aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    return aw_register_begin(aw, w);
}

int ast_aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    return aw_register_store(aw, w);
}

int ast_aw_register_end(struct ast_atomic_waker *aw)
{
    err_clear();
    return aw_register_end(aw);
}

int ast_aw_take_begin(struct ast_atomic_waker *aw)
{
    err_clear();
    return aw_take_begin(aw);
}

int ast_aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out)
{
    err_clear();
    return aw_take_end(aw, prev, out);
}

/* The whole operations, composed of exactly the steps above.  register:
 * 0, or the first error (the lock is released even after a failed store). */
int ast_aw_register(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    int seen = aw_register_begin(aw, w);
    if (seen != AST_AW_WAITING)
        return seen < 0 ? seen : 0;
    int r = aw_register_store(aw, w);
    int e = aw_register_end(aw);
    return r < 0 ? r : e < 0 ? e : 0;
}

/* take: 1 and the waker in *out, or 0 (none). */
int ast_aw_take(struct ast_atomic_waker *aw, struct ast_raw_waker *out)
{
    err_clear();
    int prev = aw_take_begin(aw);
    if (prev < 0)
        return prev;
    return aw_take_end(aw, prev, out);
}

/* take, then wake the taken waker.  1 if one was woken. */
int ast_aw_wake(struct ast_atomic_waker *aw)
{
    struct ast_raw_waker w;
    int r = ast_aw_take(aw, &w);
    if (r <= 0)
        return r;
    aw_call_wake(w);
    return err_result() ? err_result() : 1;
}

int ast_aw_state(const struct ast_atomic_waker *aw)
{
    return (int)atomic_load_explicit((_Atomic uintptr_t *)&aw->state, memory_order_acquire);
}

/* The stored waker, borrowed (NULL vtable: none). */
struct ast_raw_waker ast_aw_peek(const struct ast_atomic_waker *aw)
{
    return aw->waker;
}

/* Drop the AtomicWaker: drop the stored waker, if any.  1 if one was. */
int ast_aw_drop(struct ast_atomic_waker *aw)
{
    err_clear();
    if (!aw)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    struct ast_raw_waker w = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_store_explicit(&aw->state, AST_AW_WAITING, memory_order_release);
    if (!w.vtable)
        return 0;
    w.vtable->drop(w.data);
    return err_result() ? err_result() : 1;
}
