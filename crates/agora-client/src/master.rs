//! Plain calls to a master: JSON GETs and operator API calls.

use serde_json::Value;

use crate::{ClientError, base_url};

#[derive(Clone)]
pub struct MasterClient {
    base: String,
    http: reqwest::Client,
}

impl MasterClient {
    pub fn new(master: &str) -> MasterClient {
        MasterClient {
            base: base_url(master),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs a JSON document, e.g. `/master/state`.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ClientError::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?;
        decode(url, response).await
    }

    /// A v1 operator call; returns the decoded JSON answer (`Null` for empty answers).
    pub async fn operator(&self, call: &Value) -> Result<Value, ClientError> {
        let url = format!("{}/api/v1", self.base);
        let response = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .json(call)
            .send()
            .await
            .map_err(|e| ClientError::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?;
        decode(url, response).await
    }
}

async fn decode(url: String, response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status();
    let body = response.bytes().await.map_err(|e| ClientError::Connect {
        url: url.clone(),
        message: e.to_string(),
    })?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Invalid {
        url,
        message: e.to_string(),
    })
}
