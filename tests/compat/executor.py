"""A custom executor written with pymesos' MesosExecutorDriver (used by test_pymesos_executor.py).

Protocol with the test's scheduler (all payloads JSON, base64-encoded with pymesos' helpers):
  launchTask(t)        -> TASK_RUNNING with data {"task", "pid", "env"...}
                          then a framework message {"type": "hello", "task", "pid"}
  message {"type": "reply", "task", "payload", "action"}
                       action "finish": TASK_FINISHED for that task with data
                                        {"task", "pid", "reply"}
                       action "exit":   the executor exits with status 3 (task left running)
                       action "wait":   nothing (the scheduler will kill the task)
  killTask(t)          -> TASK_KILLED
  shutdown             -> the driver stops and the process exits.
Everything it does is logged to stderr (the sandbox's stderr file).
"""

import json
import logging
import os
import sys

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

log = logging.getLogger("compat-executor")
# Non-ASCII on purpose: RecordIO lengths count bytes, not characters.
FINISHED_MESSAGE = "finished by the scheduler's reply \u2713 (d\u00e9j\u00e0 vu)"


def pack(obj):
    return encode_data(json.dumps(obj, sort_keys=True).encode("utf-8"))


class CompatExecutor(Executor):
    def __init__(self):
        self.tasks = {}

    def registered(self, driver, executor_info, framework_info, agent_info):
        log.info("registered: executor %s framework %s agent %s",
                 executor_info["executor_id"], framework_info["id"], agent_info.get("id"))

    def launchTask(self, driver, task):
        task_id = task["task_id"]["value"]
        log.info("launchTask %s", task_id)
        self.tasks[task_id] = task
        env = {k: os.environ.get(k) for k in (
            "MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID",
            "MESOS_DIRECTORY", "MESOS_SANDBOX", "MESOS_CHECKPOINT",
        )}
        driver.sendStatusUpdate({
            "task_id": task["task_id"],
            "state": "TASK_RUNNING",
            "data": pack({
                "task": task_id,
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "sid": os.getsid(0),
                "cwd": os.getcwd(),
                "env": env,
                "task_data": task.get("data"),
            }),
        })
        driver.sendFrameworkMessage(pack({"type": "hello", "task": task_id, "pid": os.getpid()}))

    def frameworkMessage(self, driver, message):
        msg = json.loads(decode_data(message).decode("utf-8"))
        log.info("frameworkMessage %r", msg)
        if msg.get("type") != "reply" or msg.get("task") not in self.tasks:
            log.error("unexpected message %r", msg)
            return
        action = msg.get("action", "finish")
        if action == "exit":
            log.info("exiting with status 3 as asked")
            logging.shutdown()
            os._exit(3)
        if action == "wait":
            return
        task = self.tasks.pop(msg["task"])
        driver.sendStatusUpdate({
            "task_id": task["task_id"],
            "state": "TASK_FINISHED",
            "message": FINISHED_MESSAGE,
            "data": pack({"task": msg["task"], "pid": os.getpid(), "reply": msg["payload"]}),
        })

    def killTask(self, driver, task_id):
        log.info("killTask %s", task_id)
        self.tasks.pop(task_id["value"], None)
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})

    def shutdown(self, driver):
        log.info("shutdown")

    def error(self, driver, message):
        log.error("error event: %s", message)


def main():
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    driver = MesosExecutorDriver(CompatExecutor())
    driver.run()
    log.info("driver stopped, exiting")


if __name__ == "__main__":
    main()
