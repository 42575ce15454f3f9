//! The v0 JSON conventions of `/master/state` and friends: plain string ids, float epoch
//! seconds and flat resource objects.

use serde_json::{Map, Value};

use agora_types::{ResourceValue, Resources};

/// `{"cpus":4.0,"gpus":0.0,"mem":15360.0,"disk":100000.0,"ports":"[31000-32000]"}`: scalars summed
/// by name (cpus/gpus/mem/disk always present), ranges as `[a-b, c-d]`, sets as `{a, b}`.
pub fn flat_resources(resources: &Resources) -> Value {
    let mut map = Map::new();
    for name in ["cpus", "gpus", "mem", "disk"] {
        map.insert(
            name.to_owned(),
            Value::from(resources.scalar(name).to_f64()),
        );
    }
    for entry in resources.iter() {
        match &entry.value {
            ResourceValue::Scalar(_) => {
                map.insert(
                    entry.name.clone(),
                    Value::from(resources.scalar(&entry.name).to_f64()),
                );
            }
            ResourceValue::Ranges(_) => {
                let parts: Vec<String> = resources
                    .ranges(&entry.name)
                    .iter()
                    .map(|r| format!("{}-{}", r.begin, r.end))
                    .collect();
                map.insert(
                    entry.name.clone(),
                    Value::String(format!("[{}]", parts.join(", "))),
                );
            }
            ResourceValue::Set(items) => {
                let parts: Vec<&str> = items.iter().map(String::as_str).collect();
                map.insert(
                    entry.name.clone(),
                    Value::String(format!("{{{}}}", parts.join(", "))),
                );
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens() {
        let resources = Resources::parse("cpus:2;cpus(web):1;ports:[1-2,5-6]").unwrap();
        assert_eq!(
            flat_resources(&resources),
            serde_json::json!({"cpus":3.0,"gpus":0.0,"mem":0.0,"disk":0.0,"ports":"[1-2, 5-6]"})
        );
    }
}
