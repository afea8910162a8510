//! `owtctl init`: everything a fresh installation needs before owt-portal starts. Each step
//! runs only when its result is missing, so running init again changes nothing.

use crate::{cert, Failure, Global};
use owt_types::room::RoomConfig;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Name of the default room created for the super service.
    #[arg(long, default_value = "sampleRoom")]
    pub room_name: String,
    /// Create no default room.
    #[arg(long)]
    pub no_room: bool,
    /// Create no self-signed certificate.
    #[arg(long)]
    pub no_cert: bool,
    /// Print the super service id and key even when it already exists.
    #[arg(long)]
    pub print_credentials: bool,
}

/// When root initialises a state directory that belongs to the service user (created by
/// tmpfiles.d), the files must belong to that user too, or the daemons cannot open them.
pub fn give_to_directory_owner(dir: &Path, paths: &[&Path]) -> Result<(), Failure> {
    let Ok(meta) = std::fs::metadata(dir) else { return Ok(()) };
    for path in paths {
        let Ok(file) = std::fs::symlink_metadata(path) else { continue };
        if file.uid() != meta.uid() || file.gid() != meta.gid() {
            std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
                Failure::Other(format!("{}: cannot give it to the owner of {}: {e}", path.display(), dir.display()))
            })?;
        }
    }
    Ok(())
}

pub fn run(global: &Global, args: &InitArgs) -> Result<(), Failure> {
    let config = global.portal_config()?;
    let state_dir = &config.state.dir;
    if !state_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(state_dir)
            .map_err(|e| Failure::Other(format!("{}: {e}", state_dir.display())))?;
    }
    let db_path = config.database_path();
    let store = owt_store::Store::open(&db_path)?;
    let mut report = json!({"database": db_path.display().to_string()});
    let mut lines = Vec::new();

    let (super_service, created) = match store.super_service()? {
        Some(service) => (service, false),
        None => (store.create_service("superService", None, true)?, true),
    };
    report["superService"] = json!({"id": super_service.id, "created": created});
    if created {
        report["superService"]["key"] = Value::String(super_service.key.clone());
        lines.push(format!(
            "super service created\n  id:  {}\n  key: {}\n  (the key is shown only now; owtctl on this machine reads it from the database)",
            super_service.id, super_service.key
        ));
    } else if args.print_credentials {
        report["superService"]["key"] = Value::String(super_service.key.clone());
        lines.push(format!("super service\n  id:  {}\n  key: {}", super_service.id, super_service.key));
    } else {
        lines.push(format!(
            "super service {} already exists (key not shown again; --print-credentials shows it)",
            super_service.id
        ));
    }

    store.token_key()?;

    if !args.no_room && super_service.room_ids.is_empty() {
        let room = RoomConfig::create(&Value::String(args.room_name.clone()), None)
            .map_err(|e| Failure::Invalid(format!("default room: {e}")))?;
        let room = store.create_room(&super_service.id, &room)?;
        report["room"] = json!({"id": room.id, "name": room.config.name, "created": true});
        lines.push(format!("room {} ({}) created", room.config.name, room.id));
    }
    drop(store);

    let cert_path = config.certificate_path();
    if !args.no_cert && !cert_path.exists() {
        cert::generate(&config, &cert::default_names(), 825)?;
        report["certificate"] = json!({"path": cert_path.display().to_string(), "created": true});
        lines.push(format!("self-signed certificate written to {}", cert_path.display()));
    }

    let wal = db_path.with_extension("db-wal");
    let shm = db_path.with_extension("db-shm");
    give_to_directory_owner(state_dir, &[&db_path, &wal, &shm])?;

    if global.json {
        println!("{report}");
    } else {
        for line in lines {
            println!("{line}");
        }
        println!("state directory {} is ready", state_dir.display());
    }
    Ok(())
}
