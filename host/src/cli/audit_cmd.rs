//! `airlock audit [verify]`: what nodes tried to reach, and whether the log is intact.

use anyhow::anyhow;

use super::args::{AuditAction, AuditArgs};
use super::{Exit, failed, invalid};
use crate::audit::{self, AuditError, AuditFilter, Decision};
use crate::engine::StateDir;

pub(crate) fn audit(args: AuditArgs) -> Result<u8, Exit> {
    let path = StateDir::new(&args.state_dir).audit();
    if let Some(AuditAction::Verify) = args.action {
        // A missing log is not an intact one: it may have been deleted.
        if !path.exists() {
            return Err(failed(anyhow!(
                "{}: no audit log here (wrong --state-dir, or the log was removed)",
                path.display()
            )));
        }
        return match audit::verify(&path) {
            Ok(count) => {
                println!("{}: intact ({count} records)", path.display());
                Ok(0)
            }
            Err(broken @ AuditError::VerifyFailed { .. }) => {
                Err(failed(anyhow!("{}: {broken}", path.display())))
            }
            Err(other) => Err(failed(other)),
        };
    }
    let decision = match args.decision.as_deref() {
        None => None,
        Some("allow") => Some(Decision::Allow),
        Some("deny") => Some(Decision::Deny),
        Some(other) => {
            return Err(invalid(anyhow!(
                "--decision {other}: expected allow or deny"
            )));
        }
    };
    let filter = AuditFilter {
        run: args.run,
        node: args.node,
        decision,
    };
    let records = audit::read(&path, &filter).map_err(failed)?;
    if args.json {
        for record in &records {
            println!("{}", serde_json::to_string(record).map_err(failed)?);
        }
    } else {
        print!("{}", audit::format_table(&records));
    }
    Ok(0)
}
