// Railyard as a new Railway project: PostgreSQL, Redis, a bucket, the worker and the scheduler.
//
// A project file describes the whole project and `railway config apply` deletes what it
// omits, so use it for a NEW project only (README, "Deploy on Railway"): copy this file,
// package.json and package-lock.json to `.railway/` in a directory linked to an empty
// project, run `npm ci` there, set RAILYARD_GITHUB_REPO, then `railway config plan|apply`.
import { bucket, defineRailway, github, postgres, redis, ref, service } from "railway/iac";

// The repository Railway builds (your fork or copy of Railyard), as owner/name.
const REPO_VARIABLE = "RAILYARD_GITHUB_REPO";

// The Procfile's lines: the worker is what Railpack starts by default, the scheduler needs its own.
const WORKER_START = "rq worker --config worker.rq_config --worker-class worker.RailyardWorker --with-scheduler";
const SCHEDULER_START = "python -m scheduler";

// SIGTERM starts the worker's warm shutdown; Railway SIGKILLs this many seconds later.
// The longest job timeout (3 h, railyard/core/registry.py) plus a minute; a test keeps them in step.
const WORKER_DRAINING_SECONDS = "10860";
// The scheduler stops within a second of SIGTERM.
const SCHEDULER_DRAINING_SECONDS = "30";

export default defineRailway((_ctx, project) => {
  const repo = process.env[REPO_VARIABLE];
  if (!repo || !/^[\w.-]+\/[\w.-]+$/.test(repo)) {
    throw new Error(`set ${REPO_VARIABLE} to the GitHub repository to deploy, as owner/name (got ${JSON.stringify(repo)})`);
  }
  const db = postgres("Postgres");
  const cache = redis("Redis");
  const backups = bucket("backups");

  // Both services read the same settings: every value is a reference, nothing to copy by hand.
  const shared = {
    DATABASE_URL: db.env.DATABASE_URL,
    REDIS_URL: cache.env.REDIS_URL,
    BACKUP_STORAGE_URL: "s3://${{backups.BUCKET}}/railyard",
    AWS_ACCESS_KEY_ID: ref(backups, "ACCESS_KEY_ID"),
    AWS_SECRET_ACCESS_KEY: ref(backups, "SECRET_ACCESS_KEY"),
    AWS_REGION: ref(backups, "REGION"),
    AWS_ENDPOINT_URL_S3: ref(backups, "ENDPOINT"),
    S3_ADDRESSING_STYLE: "path",
  };

  const worker = service("worker", {
    source: github(repo),
    build: { builder: "RAILPACK" },
    start: WORKER_START,
    replicas: 1,
    deploy: { restartPolicyType: "ALWAYS" },
    env: { ...shared, RAILWAY_DEPLOYMENT_DRAINING_SECONDS: WORKER_DRAINING_SECONDS },
  });

  // One replica only: see docs/scheduler.md, "Why one replica".
  const scheduler = service("scheduler", {
    source: github(repo),
    build: { builder: "RAILPACK" },
    start: SCHEDULER_START,
    replicas: 1,
    deploy: { restartPolicyType: "ALWAYS" },
    env: {
      ...shared,
      RAILPACK_START_CMD: SCHEDULER_START,
      RAILWAY_DEPLOYMENT_DRAINING_SECONDS: SCHEDULER_DRAINING_SECONDS,
    },
  });

  return project("railyard", { resources: [db, cache, backups, worker, scheduler] });
});
