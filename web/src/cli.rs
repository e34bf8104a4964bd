//! Glue for the command-line subcommands that do more than start the server:
//! turning domain errors into readable messages, and the CSV import with its
//! progress bar and reject file.

use crm::Store;
use std::path::Path;

/// A readable error from a domain error, listing invalid fields.
pub fn describe(e: crm::Error) -> anyhow::Error {
    match e {
        crm::Error::Invalid(fields) => {
            let list: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.reason)).collect();
            anyhow::anyhow!("invalid input — {}", list.join("; "))
        }
        other => anyhow::Error::new(other),
    }
}

/// `centralino import parties FILE`.
pub async fn import_parties(_store: &Store, _file: &Path, _map: &[String], _rejects: Option<&Path>, _owner: Option<&str>) -> anyhow::Result<()> {
    anyhow::bail!("import is being wired up")
}
