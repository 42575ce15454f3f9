//! A task's `TaskInfo` as the master keeps it: its JSON, read back when a view or a kill needs
//! more than the task's name and user. A `TaskInfo` is most of a kilobyte in memory before
//! its strings, its JSON a few hundred bytes; at 100,000 tasks that was the largest part of
//! the master's memory.

use agora_api::mesos::TaskInfo;
use serde_json::value::RawValue;

#[derive(Clone, Debug)]
pub(crate) struct StoredTaskInfo {
    json: Box<[u8]>,
    /// Who the task runs as when it says (its command's user, else its executor's): the ACLs
    /// ask for every task of every view.
    own_user: Option<Box<str>>,
}

impl StoredTaskInfo {
    pub fn new(info: &TaskInfo) -> StoredTaskInfo {
        // A TaskInfo always serialises; an empty record would only lose the view's details.
        let json = serde_json::to_vec(info)
            .unwrap_or_default()
            .into_boxed_slice();
        let own_user = info
            .run_as(info.executor.as_ref(), "")
            .to_owned()
            .into_boxed_str();
        StoredTaskInfo {
            json,
            own_user: (!own_user.is_empty()).then_some(own_user),
        }
    }

    /// A TaskInfo an agent reported, as it sent it, and the user it names (`own_user`).
    pub fn reported(json: Box<RawValue>, own_user: Option<Box<str>>) -> StoredTaskInfo {
        let json: Box<str> = json.into();
        StoredTaskInfo {
            json: json.into_boxed_bytes(),
            own_user,
        }
    }

    /// The whole TaskInfo, read back.
    pub fn get(&self) -> TaskInfo {
        match serde_json::from_slice(&self.json) {
            Ok(info) => info,
            Err(error) => {
                tracing::error!(%error, "a stored TaskInfo does not read back");
                TaskInfo::default()
            }
        }
    }

    /// The user the task runs as (Mesos' rule): its own, else its framework's.
    pub fn run_as<'a>(&'a self, framework_user: &'a str) -> &'a str {
        self.own_user.as_deref().unwrap_or(framework_user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_api::mesos::{CommandInfo, ExecutorInfo, Id};

    #[test]
    fn reads_back_whole_and_knows_its_user() {
        let mut info = TaskInfo {
            name: "web".into(),
            task_id: Id::new("t1"),
            command: Some(CommandInfo {
                value: Some("serve".into()),
                ..CommandInfo::default()
            }),
            ..TaskInfo::default()
        };
        let stored = StoredTaskInfo::new(&info);
        assert_eq!(stored.get(), info);
        assert_eq!(stored.run_as("framework"), "framework");

        info.executor = Some(ExecutorInfo {
            command: Some(CommandInfo {
                user: Some("nobody".into()),
                ..CommandInfo::default()
            }),
            ..ExecutorInfo::default()
        });
        assert_eq!(StoredTaskInfo::new(&info).run_as("framework"), "nobody");
        if let Some(command) = info.command.as_mut() {
            command.user = Some("www".into());
        }
        assert_eq!(StoredTaskInfo::new(&info).run_as("framework"), "www");
    }
}
