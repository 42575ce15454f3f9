//! Snapshots of the master's state views as clients read them: `/master/state` (v0) and the
//! operator API's `GET_STATE` (v1), for one agent, one framework, one running task and one
//! outstanding offer. The master's clock-derived fields are set to fixed values before
//! rendering; ids are fixed by the fixture master. Refresh with
//! `UPDATE_EXPECT=1 cargo test -p agora-master snapshot` (one process: nextest's parallel
//! processes would each rewrite this file).

use expect_test::{Expect, expect};

use crate::core::tests::support::{Cluster, advance_clock, cluster, next_offer};
use crate::views::{self, Viewer};

/// The cluster the snapshots show, with every time the master read from the clock fixed.
fn frozen_cluster() -> Cluster {
    let mut c = cluster();
    advance_clock(&mut c.master, 10);
    next_offer(&mut c.master, &mut c.scheduler);
    c.master.start_time = 1_700_000_000.0;
    for agent in c.master.agents.values_mut() {
        agent.registered_time = 1_700_000_001.0;
    }
    for framework in c.master.frameworks.values_mut() {
        framework.registered_time = 1_700_000_002.0;
        let ids: Vec<_> = framework.tasks.keys().cloned().collect();
        for id in ids {
            framework.tasks.update(&id, |task| {
                task.statuses.set_timestamps(|n| 1_700_000_010.0 + n as f64)
            });
        }
    }
    c
}

/// A document as a view renders it from the master, read back.
fn render(
    master: &crate::core::Master,
    document: impl FnOnce(&views::Capture, Viewer, &mut views::Out) -> views::Written,
) -> serde_json::Value {
    let capture = views::Capture::take(master, views::Scope::ALL);
    let mut out = views::Out::memory();
    document(&capture, Viewer::everything(), &mut out).expect("nobody leaves a memory document");
    serde_json::from_slice(&out.into_bytes()).expect("the document is JSON")
}

fn check(value: &serde_json::Value, expected: Expect) {
    let text = serde_json::to_string_pretty(value).expect("JSON renders");
    expected.assert_eq(&text);
}

#[test]
fn master_state_v0() {
    let c = frozen_cluster();
    check(
        &render(&c.master, views::v0_state),
        expect![[r#"
            {
              "activated_slaves": 1,
              "build_date": "",
              "build_time": 0.0,
              "build_user": "agora",
              "capabilities": [
                "AGENT_UPDATE",
                "AGENT_DRAINING",
                "QUOTA_V2"
              ],
              "completed_frameworks": [],
              "deactivated_slaves": 0,
              "elected_time": 1700000000.0,
              "flags": {
                "agent_ping_timeout": "15secs",
                "agent_reregister_timeout": "600secs",
                "allocation_interval": "1secs",
                "authenticate_agents": "false",
                "authenticate_frameworks": "false",
                "authenticate_http_readonly": "false",
                "authenticate_http_readwrite": "false",
                "hostname": "localhost",
                "max_agent_ping_timeouts": "5",
                "port": "5050",
                "tls_require_agent_cert": "false",
                "work_dir": ""
              },
              "frameworks": [
                {
                  "active": true,
                  "capabilities": [],
                  "checkpoint": false,
                  "completed_tasks": [],
                  "connected": true,
                  "executors": [],
                  "failover_timeout": 60.0,
                  "hostname": "",
                  "id": "master-1-0000",
                  "name": "web",
                  "offered_resources": {
                    "cpus": 3.0,
                    "disk": 10240.0,
                    "gpus": 0.0,
                    "mem": 3968.0,
                    "ports": "[31000-31009]"
                  },
                  "offers": [
                    {
                      "allocation_info": {
                        "role": "*"
                      },
                      "framework_id": "master-1-0000",
                      "id": "master-1-O1",
                      "resources": {
                        "cpus": 3.0,
                        "disk": 10240.0,
                        "gpus": 0.0,
                        "mem": 3968.0,
                        "ports": "[31000-31009]"
                      },
                      "slave_id": "master-1-S0"
                    }
                  ],
                  "recovered": false,
                  "registered_time": 1700000002.0,
                  "resources": {
                    "cpus": 4.0,
                    "disk": 10240.0,
                    "gpus": 0.0,
                    "mem": 4096.0,
                    "ports": "[31000-31009]"
                  },
                  "role": "*",
                  "tasks": [
                    {
                      "executor_id": "",
                      "framework_id": "master-1-0000",
                      "id": "t1",
                      "name": "t1",
                      "resources": {
                        "cpus": 1.0,
                        "disk": 0.0,
                        "gpus": 0.0,
                        "mem": 128.0
                      },
                      "role": "*",
                      "slave_id": "master-1-S0",
                      "state": "TASK_RUNNING",
                      "statuses": [
                        {
                          "state": "TASK_STAGING",
                          "timestamp": 1700000010.0
                        },
                        {
                          "state": "TASK_RUNNING",
                          "timestamp": 1700000011.0
                        }
                      ]
                    }
                  ],
                  "unreachable_tasks": [],
                  "unregistered_time": 0.0,
                  "used_resources": {
                    "cpus": 1.0,
                    "disk": 0.0,
                    "gpus": 0.0,
                    "mem": 128.0
                  },
                  "user": "root",
                  "webui_url": ""
                }
              ],
              "hostname": "localhost",
              "id": "master-1",
              "leader": "master@127.0.0.1:5050",
              "leader_info": {
                "address": {
                  "hostname": "localhost",
                  "ip": "127.0.0.1",
                  "port": 5050
                },
                "hostname": "localhost",
                "id": "master-1",
                "ip": 16777343,
                "pid": "master@127.0.0.1:5050",
                "port": 5050,
                "version": "1.11.0"
              },
              "orphan_tasks": [],
              "pid": "master@127.0.0.1:5050",
              "recovered_slaves": [],
              "security": {
                "authentication": "off",
                "tls": "off",
                "warnings": [
                  "requests that change state are not authenticated: anyone who reaches this master can run commands on the cluster",
                  "frameworks are not authenticated",
                  "agents are not authenticated: any process that reaches the master can join as an agent",
                  "the API is plain HTTP: secrets, tokens and tasks' commands cross the network in the clear"
                ]
              },
              "slaves": [
                {
                  "active": true,
                  "attributes": {},
                  "capabilities": [
                    "MULTI_ROLE",
                    "HIERARCHICAL_ROLE",
                    "RESERVATION_REFINEMENT"
                  ],
                  "deactivated": false,
                  "hostname": "host-1",
                  "id": "master-1-S0",
                  "offered_resources": {
                    "cpus": 3.0,
                    "disk": 10240.0,
                    "gpus": 0.0,
                    "mem": 3968.0,
                    "ports": "[31000-31009]"
                  },
                  "pid": "slave(1)@host-1:5051",
                  "port": 5051,
                  "registered_time": 1700000001.0,
                  "reserved_resources": {},
                  "resources": {
                    "cpus": 4.0,
                    "disk": 10240.0,
                    "gpus": 0.0,
                    "mem": 4096.0,
                    "ports": "[31000-31009]"
                  },
                  "unreserved_resources": {
                    "cpus": 4.0,
                    "disk": 10240.0,
                    "gpus": 0.0,
                    "mem": 4096.0,
                    "ports": "[31000-31009]"
                  },
                  "used_resources": {
                    "cpus": 1.0,
                    "disk": 0.0,
                    "gpus": 0.0,
                    "mem": 128.0
                  },
                  "version": "test"
                }
              ],
              "start_time": 1700000000.0,
              "unreachable_slaves": 0,
              "unregistered_frameworks": [],
              "version": "1.11.0"
            }"#]],
    );
}

#[test]
fn operator_get_state_v1() {
    let c = frozen_cluster();
    check(
        &render(&c.master, views::get_state),
        expect![[r#"
            {
              "get_agents": {
                "agents": [
                  {
                    "active": true,
                    "agent_info": {
                      "hostname": "host-1",
                      "id": {
                        "value": "master-1-S0"
                      },
                      "port": 5051,
                      "resources": [
                        {
                          "name": "cpus",
                          "role": "*",
                          "scalar": {
                            "value": 4.0
                          },
                          "type": "SCALAR"
                        },
                        {
                          "name": "mem",
                          "role": "*",
                          "scalar": {
                            "value": 4096.0
                          },
                          "type": "SCALAR"
                        },
                        {
                          "name": "disk",
                          "role": "*",
                          "scalar": {
                            "value": 10240.0
                          },
                          "type": "SCALAR"
                        },
                        {
                          "name": "ports",
                          "ranges": {
                            "range": [
                              {
                                "begin": 31000,
                                "end": 31009
                              }
                            ]
                          },
                          "role": "*",
                          "type": "RANGES"
                        }
                      ]
                    },
                    "allocated_resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 1.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 128.0
                        },
                        "type": "SCALAR"
                      }
                    ],
                    "capabilities": [
                      {
                        "type": "MULTI_ROLE"
                      },
                      {
                        "type": "HIERARCHICAL_ROLE"
                      },
                      {
                        "type": "RESERVATION_REFINEMENT"
                      }
                    ],
                    "deactivated": false,
                    "offered_resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 3.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 3968.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "disk",
                        "role": "*",
                        "scalar": {
                          "value": 10240.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "ports",
                        "ranges": {
                          "range": [
                            {
                              "begin": 31000,
                              "end": 31009
                            }
                          ]
                        },
                        "role": "*",
                        "type": "RANGES"
                      }
                    ],
                    "pid": "slave(1)@host-1:5051",
                    "registered_time": {
                      "nanoseconds": 1700000001000000000
                    },
                    "total_resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 4.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 4096.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "disk",
                        "role": "*",
                        "scalar": {
                          "value": 10240.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "ports",
                        "ranges": {
                          "range": [
                            {
                              "begin": 31000,
                              "end": 31009
                            }
                          ]
                        },
                        "role": "*",
                        "type": "RANGES"
                      }
                    ],
                    "version": "test"
                  }
                ],
                "recovered_agents": []
              },
              "get_executors": {
                "executors": []
              },
              "get_frameworks": {
                "completed_frameworks": [],
                "frameworks": [
                  {
                    "active": true,
                    "allocated_resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 1.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 128.0
                        },
                        "type": "SCALAR"
                      }
                    ],
                    "connected": true,
                    "framework_info": {
                      "checkpoint": false,
                      "failover_timeout": 60.0,
                      "id": {
                        "value": "master-1-0000"
                      },
                      "name": "web",
                      "user": "root"
                    },
                    "offered_resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 3.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 3968.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "disk",
                        "role": "*",
                        "scalar": {
                          "value": 10240.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "ports",
                        "ranges": {
                          "range": [
                            {
                              "begin": 31000,
                              "end": 31009
                            }
                          ]
                        },
                        "role": "*",
                        "type": "RANGES"
                      }
                    ],
                    "recovered": false,
                    "registered_time": {
                      "nanoseconds": 1700000002000000000
                    }
                  }
                ]
              },
              "get_tasks": {
                "completed_tasks": [],
                "tasks": [
                  {
                    "agent_id": {
                      "value": "master-1-S0"
                    },
                    "framework_id": {
                      "value": "master-1-0000"
                    },
                    "name": "t1",
                    "resources": [
                      {
                        "name": "cpus",
                        "role": "*",
                        "scalar": {
                          "value": 1.0
                        },
                        "type": "SCALAR"
                      },
                      {
                        "name": "mem",
                        "role": "*",
                        "scalar": {
                          "value": 128.0
                        },
                        "type": "SCALAR"
                      }
                    ],
                    "state": "TASK_RUNNING",
                    "statuses": [
                      {
                        "agent_id": {
                          "value": "master-1-S0"
                        },
                        "source": "SOURCE_MASTER",
                        "state": "TASK_STAGING",
                        "task_id": {
                          "value": "t1"
                        },
                        "timestamp": 1700000010.0
                      },
                      {
                        "agent_id": {
                          "value": "master-1-S0"
                        },
                        "source": "SOURCE_EXECUTOR",
                        "state": "TASK_RUNNING",
                        "task_id": {
                          "value": "t1"
                        },
                        "timestamp": 1700000011.0,
                        "uuid": "u-running"
                      }
                    ],
                    "task_id": {
                      "value": "t1"
                    }
                  }
                ],
                "unreachable_tasks": []
              }
            }"#]],
    );
}
