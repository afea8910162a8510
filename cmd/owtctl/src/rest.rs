//! A small MAuth-signing client of the management REST API.

use crate::{Failure, Global};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    service_id: String,
    service_key: String,
}

impl Client {
    pub fn new(global: &Global) -> Result<Client, Failure> {
        let config = global.portal_config()?;
        let (service_id, service_key) = match (&global.service_id, &global.service_key) {
            (Some(id), Some(key)) => (id.clone(), key.clone()),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Failure::Other("give both --service-id and --service-key, or neither".into()))
            }
            (None, None) => {
                let path = config.database_path();
                let store = owt_store::Store::open_initialised(&path).map_err(|e| {
                    Failure::Other(format!(
                        "no credentials: give --service-id/--service-key (or OWT_SERVICE_ID/OWT_SERVICE_KEY), \
                         or run where {} is readable ({e})",
                        path.display()
                    ))
                })?;
                let service = store.super_service()?.ok_or(owt_store::StoreError::NotInitialised)?;
                (service.id, service.key)
            }
        };
        let api = &config.management_api;
        let base = global
            .url
            .clone()
            .unwrap_or_else(|| format!("{}://127.0.0.1:{}", if api.ssl { "https" } else { "http" }, api.port));
        let mut tls = native_tls::TlsConnector::builder();
        if global.insecure {
            tls.danger_accept_invalid_certs(true);
        }
        if let Ok(pem) = std::fs::read(config.certificate_path()) {
            if let Ok(cert) = native_tls::Certificate::from_pem(&pem) {
                tls.add_root_certificate(cert);
            }
        }
        let tls = tls.build().map_err(|e| Failure::Other(format!("TLS setup: {e}")))?;
        let agent = ureq::AgentBuilder::new().tls_connector(Arc::new(tls)).timeout(Duration::from_secs(30)).build();
        Ok(Client { agent, base: base.trim_end_matches('/').to_string(), service_id, service_key })
    }

    /// Calls the API; JSON answers come back as JSON, text answers as a JSON string.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let request = self
            .agent
            .request(method, &url)
            .set("Authorization", &owt_auth::sign_header_now(&self.service_id, &self.service_key, now_ms));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                let text = response.into_string().map_err(|e| Failure::Unreachable(format!("{url}: {e}")))?;
                Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                let message = if status == 401 {
                    format!("authentication refused by {url} (wrong service id or key, or clock skew)")
                } else {
                    format!("{message} (HTTP {status})")
                };
                Err(match status {
                    404 => Failure::NotFound(message),
                    401 | 403 => Failure::Denied(message),
                    400 | 413 => Failure::Invalid(message),
                    _ => Failure::Server(message),
                })
            }
            Err(ureq::Error::Transport(err)) => {
                Err(Failure::Unreachable(format!("cannot reach the portal at {}: {err}", self.base)))
            }
        }
    }
}
