//! Mesos' `HealthCheck` message (what a `TaskInfo.health_check` holds), typed, with Mesos'
//! defaults and the validation the master applies before a task is launched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;
use crate::mesos::CommandInfo;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `COMMAND`, `HTTP` or `TCP`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default = "defaults::delay")]
    pub delay_seconds: f64,
    #[serde(default = "defaults::interval")]
    pub interval_seconds: f64,
    #[serde(default = "defaults::timeout")]
    pub timeout_seconds: f64,
    /// Failures in a row (after the grace period) that get the task killed; 0 never kills.
    #[serde(default = "defaults::consecutive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "defaults::grace_period")]
    pub grace_period_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// `http` (the default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Status codes that count as healthy besides 200–399 (Mesos accepts but ignores them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u32>,
    /// `IPv4` (the default) or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpCheck {
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

mod defaults {
    pub fn delay() -> f64 {
        15.0
    }
    pub fn interval() -> f64 {
        10.0
    }
    pub fn timeout() -> f64 {
        20.0
    }
    pub fn consecutive_failures() -> u32 {
        3
    }
    pub fn grace_period() -> f64 {
        10.0
    }
}

/// What a valid health check probes.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    Command(CommandInfo),
    Http {
        https: bool,
        ipv6: bool,
        port: u16,
        path: String,
    },
    Tcp {
        ipv6: bool,
        port: u16,
    },
}

impl HealthCheck {
    /// Reads and validates `TaskInfo.health_check`, with Mesos' error messages.
    pub fn parse(value: &Value) -> Result<HealthCheck, ApiError> {
        let check: HealthCheck = serde_json::from_value(value.clone())
            .map_err(|e| ApiError::invalid(format!("Invalid health check: {e}")))?;
        check.probe()?;
        Ok(check)
    }

    /// The probe this check runs, or why it is invalid.
    pub fn probe(&self) -> Result<Probe, ApiError> {
        for (name, value) in [
            ("delay_seconds", self.delay_seconds),
            ("interval_seconds", self.interval_seconds),
            ("timeout_seconds", self.timeout_seconds),
            ("grace_period_seconds", self.grace_period_seconds),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(ApiError::invalid(format!(
                    "Expecting '{name}' to be non-negative"
                )));
            }
        }
        let ipv6 = |protocol: &Option<String>| -> Result<bool, ApiError> {
            match protocol.as_deref() {
                None | Some("IPv4") => Ok(false),
                Some("IPv6") => Ok(true),
                Some(other) => Err(ApiError::invalid(format!(
                    "Unknown network protocol '{other}'"
                ))),
            }
        };
        let port = |port: u32| -> Result<u16, ApiError> {
            u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| ApiError::invalid(format!("Port {port} is not a valid port")))
        };
        match self.kind.as_deref() {
            Some("COMMAND") => {
                let command = self
                    .command
                    .as_ref()
                    .filter(|c| c.value.as_deref().is_some_and(|v| !v.is_empty()))
                    .ok_or_else(|| {
                        ApiError::invalid("Expecting 'command' to be set for COMMAND health check")
                    })?;
                Ok(Probe::Command(command.clone()))
            }
            Some("HTTP") => {
                let http = self.http.as_ref().ok_or_else(|| {
                    ApiError::invalid("Expecting 'http' to be set for HTTP health check")
                })?;
                let https = match http.scheme.as_deref() {
                    None | Some("http") => false,
                    Some("https") => true,
                    Some(other) => {
                        return Err(ApiError::invalid(format!(
                            "Unsupported HTTP health check scheme: '{other}'"
                        )));
                    }
                };
                let path = http.path.clone().unwrap_or_else(|| "/".into());
                if !path.starts_with('/') {
                    return Err(ApiError::invalid(format!(
                        "The path '{path}' of HTTP health check must start with '/'"
                    )));
                }
                Ok(Probe::Http {
                    https,
                    ipv6: ipv6(&http.protocol)?,
                    port: port(http.port)?,
                    path,
                })
            }
            Some("TCP") => {
                let tcp = self.tcp.as_ref().ok_or_else(|| {
                    ApiError::invalid("Expecting 'tcp' to be set for TCP health check")
                })?;
                Ok(Probe::Tcp {
                    ipv6: ipv6(&tcp.protocol)?,
                    port: port(tcp.port)?,
                })
            }
            Some(other) => Err(ApiError::invalid(format!(
                "Unsupported health check type '{other}'"
            ))),
            None => Err(ApiError::invalid("HealthCheck must specify 'type'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_mesos() {
        let check = HealthCheck::parse(&json!({"type": "TCP", "tcp": {"port": 8080}})).unwrap();
        assert_eq!(
            (
                check.delay_seconds,
                check.interval_seconds,
                check.timeout_seconds,
                check.consecutive_failures,
                check.grace_period_seconds
            ),
            (15.0, 10.0, 20.0, 3, 10.0)
        );
        assert_eq!(
            check.probe(),
            Ok(Probe::Tcp {
                ipv6: false,
                port: 8080
            })
        );
    }

    #[test]
    fn http_checks_default_to_plain_http_on_root() {
        let check =
            HealthCheck::parse(&json!({"type": "HTTP", "http": {"port": 80, "scheme": "https"}}))
                .unwrap();
        assert_eq!(
            check.probe(),
            Ok(Probe::Http {
                https: true,
                ipv6: false,
                port: 80,
                path: "/".into()
            })
        );
    }

    #[test]
    fn invalid_checks_say_what_is_wrong() {
        for (body, expected) in [
            (json!({"tcp": {"port": 1}}), "must specify 'type'"),
            (json!({"type": "HTTP"}), "'http' to be set"),
            (
                json!({"type": "TCP", "tcp": {"port": 70000}}),
                "not a valid port",
            ),
            (json!({"type": "COMMAND"}), "'command' to be set"),
            (
                json!({"type": "HTTP", "http": {"port": 1, "path": "x"}}),
                "must start with '/'",
            ),
            (
                json!({"type": "TCP", "tcp": {"port": 1}, "interval_seconds": -1}),
                "interval_seconds",
            ),
            (json!({"type": "GRPC"}), "Unsupported health check type"),
        ] {
            let error = HealthCheck::parse(&body).unwrap_err();
            assert!(error.to_string().contains(expected), "{body}: {error}");
        }
    }
}
