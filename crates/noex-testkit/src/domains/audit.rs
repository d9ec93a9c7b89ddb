//! `audit.*`: querying the audit log.

use crate::error::{OpError, OpResult};
use crate::state::{Core, Req};

fn not_configured() -> OpError {
    OpError::unknown("Audit log is not configured")
}

/// Runs before every `audit.*` operation: the audit log must be on.
pub(crate) fn guard(c: &mut Core, _r: &Req<'_>) -> Result<(), OpError> {
    if c.audit.is_none() {
        return Err(not_configured());
    }
    Ok(())
}

pub(crate) fn query(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.audit.as_ref().ok_or_else(not_configured)?.query(r.body)
}
