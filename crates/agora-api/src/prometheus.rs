//! Prometheus text exposition of metrics kept under Mesos names: `master/tasks_running`
//! becomes `agora_master_tasks_running`.

/// Renders `(Mesos name, value)` pairs; names for which `is_counter` holds are typed
/// `counter`, the rest `gauge`.
pub fn render(metrics: &[(String, f64)], is_counter: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for (name, value) in metrics {
        let name = self::name(name);
        let kind = if is_counter(&name) {
            "counter"
        } else {
            "gauge"
        };
        text.push_str(&format!("# TYPE {name} {kind}\n{name} {value}\n"));
    }
    text
}

/// One metric family with labelled samples, in Prometheus text: `# TYPE` then a line per
/// sample, label values escaped.
pub fn render_family(name: &str, counter: bool, samples: &[(Vec<(&str, String)>, f64)]) -> String {
    let mut text = format!(
        "# TYPE {name} {}\n",
        if counter { "counter" } else { "gauge" }
    );
    for (labels, value) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| {
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                format!("{key}=\"{escaped}\"")
            })
            .collect();
        text.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
    }
    text
}

/// The Prometheus name of a Mesos-style one (`master/tasks_running` → `agora_master_tasks_running`).
pub fn name(mesos_name: &str) -> String {
    format!("agora_{mesos_name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_labelled_families_with_escapes() {
        let text = super::render_family(
            "agora_container_processes",
            false,
            &[(vec![("executor_id", "a\"b".to_owned())], 3.0)],
        );
        assert_eq!(
            text,
            "# TYPE agora_container_processes gauge\nagora_container_processes{executor_id=\"a\\\"b\"} 3\n"
        );
    }

    #[test]
    fn renders_names_and_types() {
        let text = super::render(
            &[
                ("master/tasks_running".into(), 2.0),
                ("master/slave_registrations".into(), 1.0),
            ],
            |name| name.ends_with("_registrations"),
        );
        assert_eq!(
            text,
            "# TYPE agora_master_tasks_running gauge\nagora_master_tasks_running 2\n\
             # TYPE agora_master_slave_registrations counter\nagora_master_slave_registrations 1\n"
        );
    }
}
