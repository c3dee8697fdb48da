//! `airlock policy check|test`: what a policy allows, and what it decides for one URL.

use super::Exit;
use super::args::{PolicyAction, PolicyArgs};
use super::setup::load_policy;
use crate::egress::check_url;

pub(crate) async fn policy(args: PolicyArgs) -> Result<u8, Exit> {
    match args.action {
        PolicyAction::Check { file } => {
            let policy = load_policy(Some(&file))?;
            println!("{}: valid policy", file.display());
            print!("{}", policy.egress.explain());
            Ok(0)
        }
        PolicyAction::Test { file, url } => {
            let policy = load_policy(Some(&file))?;
            let verdict = check_url(&policy.egress, &url).await;
            println!("{url}: {verdict}");
            Ok(if verdict.allowed { 0 } else { 1 })
        }
    }
}
