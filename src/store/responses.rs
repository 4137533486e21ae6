//! `REQUEST_RESPONSE` completion: the subscriber's `complete` callback settles an invocation.
//! Whether it may is decided by the domain ([`Invocation::completing`]); this persists it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::invocations::get;
use super::queue::expire_overdue;
use super::schema::invocations;
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::ids::InvocationId;
use crate::domain::invocation::{CompleteRefusal, Completing, DeadReason, Invocation, InvocationState};

/// Completes a `REQUEST_RESPONSE` invocation with its output (`Ok`) or the subscriber's error
/// (`Err`): delivered or dead, either way finished. A callback that arrives before the
/// subscriber's acknowledgement was recorded is accepted too.
pub fn complete(
    conn: &mut AnyConnection,
    id: &InvocationId,
    result: Result<&str, &str>,
    now: NaiveDateTime,
) -> Result<Result<(), CompleteRefusal>, StoreError> {
    write_transaction(conn, |conn| {
        for _ in 0..3 {
            let invocation = get(conn, id)?;
            match invocation.completing(now) {
                Completing::Refused(refusal) => return Ok(Err(refusal)),
                Completing::ExpiresFirst(deadline) => {
                    expire_overdue(conn, now)?;
                    return Ok(Err(CompleteRefusal::PastDeadline(deadline)));
                }
                Completing::Takes => {}
            }
            if settle(conn, &invocation, result, now)? {
                return Ok(Ok(()));
            }
            // Changed since it was read (the acknowledgement was just recorded): look again.
        }
        let now_state = get(conn, id)?;
        Ok(Err(CompleteRefusal::AlreadyCompleted { state: now_state.state, at: now_state.completed }))
    })
}

/// Writes the result if the invocation is still in the state it was read in.
fn settle(
    conn: &mut AnyConnection,
    invocation: &Invocation,
    result: Result<&str, &str>,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let (state, output, error, reason) = match result {
        Ok(output) => (InvocationState::Delivered, Some(output), None, None),
        Err(error) => (
            InvocationState::Dead,
            None,
            Some(format!("the subscriber reported: {error}")),
            Some(DeadReason::SubscriberError.as_str()),
        ),
    };
    let changed = diesel::update(
        invocations::table
            .find(invocation.id.as_str())
            .filter(invocations::state.eq(invocation.state.as_str())),
    )
    .set((
        invocations::state.eq(state.as_str()),
        invocations::output.eq(output),
        invocations::last_error.eq(error),
        invocations::dead_reason.eq(reason),
        invocations::lease_owner.eq(None::<String>),
        invocations::lease_expires_at.eq(None::<NaiveDateTime>),
        invocations::next_attempt_at.eq(now),
        invocations::completed.eq(Some(now)),
        invocations::updated.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
