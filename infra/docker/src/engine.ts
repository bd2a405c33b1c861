import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const SCRIPTS = join(import.meta.dirname, '../scripts');
/** The Dockerfile and the build context, relative to the repo root. */
const DOCKERFILE = 'infra/docker/Dockerfile';

export interface DockerEngine {
  /** The client binary: Debian's, whose BuildKit is built in. */
  docker: string;
  /** Runs the client and returns its trimmed stdout; stderr goes to ours. */
  out(...args: string[]): string;
  /** The stand-in for node:20-bookworm-slim (built once, then taken from Docker's store). */
  localBase(): string;
  /** Builds the image from the tree at `context` on `base`; throws with the end of the build's output. */
  build(tag: string, context: string, base: string): void;
  sizeBytes(image: string): number;
}

/**
 * The engine the image check and the start-up bench drive: scripts/docker-engine.sh installs and starts it when
 * needed. `env` is the caller's environment, handed to the scripts and the build.
 */
export function dockerEngine(env: NodeJS.ProcessEnv): DockerEngine {
  const run = (command: string, args: string[], extra: Record<string, string> = {}) =>
    execFileSync(command, args, { encoding: 'utf8', env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 }).trim();
  const docker = run('bash', [join(SCRIPTS, 'docker-engine.sh')]);
  const out = (...args: string[]) => run(docker, args);
  return {
    docker,
    out,
    localBase: () => run('bash', [join(SCRIPTS, 'local-base.sh')], { DOCKER: docker }),
    build: (tag, context, base) => {
      const result = spawnSync(docker, ['build', '-f', DOCKERFILE, '--build-arg', `NODE_IMAGE=${base}`, '-t', tag, '.'], {
        cwd: context,
        env: { ...env, DOCKER_BUILDKIT: '1' },
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
      if (result.status !== 0) throw new Error(`docker build of ${tag} failed:\n${result.stderr.slice(-4000)}`);
    },
    sizeBytes: (image) => Number(out('image', 'inspect', '-f', '{{.Size}}', image)),
  };
}
