//! Room settings given on the command line: a few flags for the common settings, and a JSON
//! or TOML file for everything in the OWT room schema. Flags win over the file.

use crate::Failure;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct RoomOptions {
    /// JSON or TOML file with room options (OWT room schema, e.g. {"views": [...]}).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Most publications the room accepts; -1: unlimited.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub input_limit: Option<i64>,
    /// Most participants the room accepts; -1: unlimited.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub participant_limit: Option<i64>,
    /// Forward only the most active audio streams.
    #[arg(long, value_name = "BOOL")]
    pub select_active_audio: Option<bool>,
    /// No mixed views (no MCU work for this room).
    #[arg(long)]
    pub no_views: bool,
}

impl RoomOptions {
    pub fn to_json(&self) -> Result<Value, Failure> {
        let mut options = match &self.file {
            Some(path) => read_file(path)?,
            None => Map::new(),
        };
        if let Some(n) = self.input_limit {
            options.insert("inputLimit".into(), n.into());
        }
        if let Some(n) = self.participant_limit {
            options.insert("participantLimit".into(), n.into());
        }
        if let Some(b) = self.select_active_audio {
            options.insert("selectActiveAudio".into(), b.into());
        }
        if self.no_views {
            options.insert("views".into(), Value::Array(vec![]));
        }
        Ok(Value::Object(options))
    }
}

fn read_file(path: &PathBuf) -> Result<Map<String, Value>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::Other(format!("{}: {e}", path.display())))?;
    let is_toml = path.extension().is_some_and(|ext| ext == "toml");
    let value: Value = if is_toml {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| Failure::Invalid(format!("{}: {e}", path.display())))?;
        serde_json::to_value(table).map_err(|e| Failure::Invalid(format!("{}: {e}", path.display())))?
    } else {
        serde_json::from_str(&text).map_err(|e| Failure::Invalid(format!("{}: not valid JSON: {e}", path.display())))?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Failure::Invalid(format!("{}: room options must be an object", path.display()))),
    }
}
