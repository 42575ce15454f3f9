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
