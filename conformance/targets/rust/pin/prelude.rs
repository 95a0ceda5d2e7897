// The prelude of every program the `rustc` pin target compiles.
//
// oracle.py (beside this file) turns each spec trace into one function of Rust
// statements over bindings x0/x1 (values) and p0/p1 (their pins), one
// statement per line, and appends the functions and a main to this file.
// What the statements print is what the target observes:
//
//   @ t s            the marker before step s of trace t; an `end` step's
//                    marker is the last statement of its scope's block, so
//                    the drops at the closing brace print after it ("~":
//                    the last scope's, when the trace does not end it; "$":
//                    after the whole trace)
//   R a [b]          a step's result: poll/check print "R stable selfref_ok",
//                    the pinned projection prints "R stable"; "-" is None
//   D slot how       a value's drop ran: how is free, in-place or moved
//
// Two value types: U is Unpin, N is !Unpin (it holds a PhantomPinned).
// Each knows its slot (the v of x{v}/p{v}).  `init`, called through the pin
// right after a value is pinned (as a future sets itself up on its first
// poll), records N's pinned address in PINNED[slot] and points `selfp` at
// the value's own `data` field (`unpin_all`, between two scopes, forgets
// the addresses of values leaked in the first: nothing reaches them any
// more).  Nothing here ever dereferences `selfp` or
// a recorded address: they are only compared, so a value moved out of its
// pin (the spec's unsafe_move) is reported, never read through.

#![allow(warnings)]
use std::cell::Cell;
use std::marker::PhantomPinned;
use std::mem;
use std::pin::{pin, Pin};
use std::ptr;

thread_local! {
    // Where each slot's !Unpin value was pinned (0: it is not pinned).
    static PINNED: [Cell<usize>; 2] = const { [Cell::new(0), Cell::new(0)] };
}

fn recorded(slot: usize) -> usize {
    PINNED.with(|t| t[slot].get())
}

fn record(slot: usize, at: usize) {
    PINNED.with(|t| t[slot].set(at))
}

fn unpin_all() {
    PINNED.with(|t| t.iter().for_each(|c| c.set(0)))
}

fn show(b: Option<bool>) -> &'static str {
    match b {
        None => "-",
        Some(true) => "true",
        Some(false) => "false",
    }
}

// A structurally pinned field: its address must be the struct's pinned
// address plus the field's offset (`off`).
pub struct Inner {
    slot: usize,
    watched: bool, // the field of an N (a U is never recorded)
    off: usize,
}

impl Inner {
    fn check(self: Pin<&mut Self>) {
        let at = &*self as *const Inner as usize;
        let rec = recorded(self.slot);
        let stable = if !self.watched || rec == 0 { None } else { Some(at == rec + self.off) };
        println!("R {}", show(stable));
    }
}

// A value fresh from its constructor, of the type inference asks for
// (Pin::set and mem::replace take the pinned type: no kind to track).
trait Fresh {
    fn fresh(slot: usize) -> Self;
}

macro_rules! value_type {
    ($T:ident, $watched:expr $(, $marker:ident)?) => {
        pub struct $T {
            slot: usize,
            data: u64,
            selfp: *const u64, // null: no self-reference set up
            inner: Inner,
            $($marker: PhantomPinned,)?
        }

        impl Fresh for $T {
            fn fresh(slot: usize) -> $T {
                $T::new(slot)
            }
        }

        impl $T {
            fn new(slot: usize) -> $T {
                $T {
                    slot,
                    data: 0,
                    selfp: ptr::null(),
                    inner: Inner { slot, watched: $watched, off: mem::offset_of!($T, inner) },
                    $($marker: PhantomPinned,)?
                }
            }

            // Set up what the value expects of its pinned place.
            fn init(self: Pin<&mut Self>) {
                let me = unsafe { self.get_unchecked_mut() };
                if $watched {
                    record(me.slot, me as *const $T as usize);
                }
                me.selfp = &me.data as *const u64;
            }

            fn stable(&self) -> Option<bool> {
                let rec = recorded(self.slot);
                if !$watched || rec == 0 { None } else { Some(self as *const $T as usize == rec) }
            }

            fn selfref_ok(&self) -> bool {
                self.selfp.is_null() || self.selfp == &self.data as *const u64
            }

            fn poll(self: Pin<&mut Self>) {
                println!("R {} {}", show(self.stable()), self.selfref_ok());
            }

            fn check(&self) {
                println!("R {} {}", show(self.stable()), self.selfref_ok());
            }

            // What a plain &mut T (Pin::get_mut) is used for.
            fn touch(&mut self) {
                self.data += 1;
            }

            fn inner(self: Pin<&mut Self>) -> Pin<&mut Inner> {
                unsafe { self.map_unchecked_mut(|s| &mut s.inner) }
            }

            // A non-structural field: a plain &mut, safe to move out of.
            fn data(self: Pin<&mut Self>) -> &mut u64 {
                unsafe { &mut self.get_unchecked_mut().data }
            }
        }

        impl Drop for $T {
            fn drop(&mut self) {
                let rec = recorded(self.slot);
                let how = if !$watched || rec == 0 {
                    "free"
                } else if self as *const $T as usize == rec {
                    "in-place"
                } else {
                    "moved"
                };
                if $watched {
                    record(self.slot, 0);
                }
                println!("D {} {}", self.slot, how);
            }
        }
    };
}

value_type!(U, false);
value_type!(N, true, _pinned);

fn mark(t: usize, s: &str) {
    println!("@ {} {}", t, s);
}

// The traces follow, then main.
