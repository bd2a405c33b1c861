import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  loadConfigOrExit,
  logLevel,
  milliseconds,
  nodeEnv,
  parseConfig,
  port,
  postgresUrl,
  redisUrl,
} from '../src/config.ts';
import { parseRedisTarget } from '../src/redis.ts';

const schema = z.object({
  PORT: port(4000),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
  DATABASE_URL: postgresUrl.optional(),
  REDIS_URL: redisUrl.optional(),
  REQUEST_TIMEOUT_MS: milliseconds(5_000),
});

/** Runs parseConfig expecting a ConfigError, and returns it. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    parseConfig(schema, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('parseConfig accepted an invalid environment');
}

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('parseConfig', () => {
  it('applies every default to an empty environment', () => {
    expect(parseConfig(schema, {})).toEqual({
      PORT: 4000,
      LOG_LEVEL: 'info',
      NODE_ENV: 'development',
      REQUEST_TIMEOUT_MS: 5_000,
    });
  });

  it('coerces and validates values that are set', () => {
    const config = parseConfig(schema, {
      PORT: '8080',
      LOG_LEVEL: 'debug',
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://app@db:5432/users',
      REDIS_URL: 'rediss://cache:6380/0',
      REQUEST_TIMEOUT_MS: '250',
      UNRELATED: 'ignored',
    });
    expect(config).toEqual({
      PORT: 8080,
      LOG_LEVEL: 'debug',
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://app@db:5432/users',
      REDIS_URL: 'rediss://cache:6380/0',
      REQUEST_TIMEOUT_MS: 250,
    });
  });

  it('treats empty strings as unset, so defaults apply and optional values stay absent', () => {
    const config = parseConfig(schema, {
      PORT: '',
      LOG_LEVEL: '',
      NODE_ENV: '',
      DATABASE_URL: '',
      REDIS_URL: '',
      REQUEST_TIMEOUT_MS: '',
    });
    expect(config).toEqual({ PORT: 4000, LOG_LEVEL: 'info', NODE_ENV: 'development', REQUEST_TIMEOUT_MS: 5_000 });
    expect(config).not.toHaveProperty('DATABASE_URL');
    expect(config).not.toHaveProperty('REDIS_URL');
  });

  it('treats undefined values as unset too', () => {
    expect(parseConfig(schema, { PORT: undefined, LOG_LEVEL: undefined }).PORT).toBe(4000);
  });

  it('reports every invalid variable at once, each by name', () => {
    const error = configError({ PORT: 'not-a-port', REDIS_URL: 'http://cache:6379' });
    expect(error.issues).toHaveLength(2);
    expect(error.issues.some((issue) => issue.startsWith('PORT: '))).toBe(true);
    expect(error.issues.some((issue) => issue.startsWith('REDIS_URL: '))).toBe(true);
    expect(error.issues.find((issue) => issue.startsWith('REDIS_URL: '))).toContain('must be redis://host:port, redis+cluster://');
    expect(error.name).toBe('ConfigError');
    expect(error.message).toMatch(/^Invalid configuration:\n {2}- /);
    for (const issue of error.issues) expect(error.message).toContain(issue);
  });

  it('names all of many problems, not just the first', () => {
    const error = configError({
      PORT: '70000',
      LOG_LEVEL: 'loud',
      NODE_ENV: 'staging',
      DATABASE_URL: 'mysql://db/users',
      REQUEST_TIMEOUT_MS: '-5',
    });
    const named = error.issues.map((issue) => issue.split(':')[0]).sort();
    expect(named).toEqual(['DATABASE_URL', 'LOG_LEVEL', 'NODE_ENV', 'PORT', 'REQUEST_TIMEOUT_MS']);
  });

  it('bounds ports to 0..65535 integers', () => {
    expect(parseConfig(schema, { PORT: '0' }).PORT).toBe(0);
    expect(parseConfig(schema, { PORT: '65535' }).PORT).toBe(65535);
    for (const bad of ['-1', '65536', '80.5', 'http']) {
      expect(configError({ PORT: bad }).issues).toEqual([expect.stringMatching(/^PORT: /)]);
    }
  });

  it('reads only the env object it is given, never process.env', () => {
    vi.stubEnv('PORT', '9999');
    vi.stubEnv('LOG_LEVEL', 'not-a-level');
    expect(parseConfig(schema, {})).toMatchObject({ PORT: 4000, LOG_LEVEL: 'info' });
  });
});

describe('loadConfigOrExit', () => {
  it('returns the config when the environment is valid', () => {
    expect(loadConfigOrExit(schema, { PORT: '1234' }).PORT).toBe(1234);
  });

  it('prints every problem to stderr and exits with status 1', () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const exit = vi.spyOn(process, 'exit').mockImplementation((code?: string | number | null) => {
      throw new Error(`process.exit(${code})`);
    });

    expect(() => loadConfigOrExit(schema, { PORT: 'x', LOG_LEVEL: 'loud' })).toThrow('process.exit(1)');
    expect(exit).toHaveBeenCalledWith(1);
    const output = written.join('');
    expect(output).toContain('Invalid configuration');
    expect(output).toContain('PORT: ');
    expect(output).toContain('LOG_LEVEL: ');
  });
});

describe('REDIS_URL', () => {
  const parse = (url: string) => {
    // The config keeps the string (composition roots pass it on); the target is what createInfrastructure makes of it.
    const value = parseConfig(schema, { REDIS_URL: url }).REDIS_URL;
    expect(value).toBe(url.trim());
    return parseRedisTarget(value as string);
  };

  it('keeps one server as the URL ioredis reads, TLS and database included', () => {
    expect(parse('redis://127.0.0.1:6379/0')).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6379/0' });
    expect(parse('rediss://user:p%40ss@cache:6380')).toEqual({ mode: 'standalone', url: 'rediss://user:p%40ss@cache:6380' });
    expect(parse('redis://cache:6379/0?family=6')).toEqual({ mode: 'standalone', url: 'redis://cache:6379/0?family=6' });
  });

  it('reads a cluster as its seed nodes, with credentials and TLS', () => {
    expect(parse('redis+cluster://127.0.0.1:7000,127.0.0.1:7001, [::1]:7002')).toEqual({
      mode: 'cluster',
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
    });
    expect(parse('rediss+cluster://app:s%3Acret@cache-1,cache-2:7001')).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'cache-1', port: 6379 },
        { host: 'cache-2', port: 7001 },
      ],
      tls: true,
      username: 'app',
      password: 's:cret',
    });
  });

  it('reads Sentinels, the primary they name and its database', () => {
    expect(parse('redis+sentinel://:secret@s1:26379,s2/mymaster/2')).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      db: 2,
      tls: false,
      password: 'secret',
    });
  });

  it('refuses what it cannot read, saying which form was meant and never echoing a password', () => {
    const issue = (url: string) => configError({ REDIS_URL: url }).issues[0] ?? '';
    expect(issue('redis://a:7000,b:7001')).toContain('redis+cluster://');
    expect(issue('redis+cluster://a:7000/1')).toContain('no databases');
    expect(issue('redis+cluster://a:7000?tls=1')).toContain('no query string');
    expect(issue('redis+sentinel://:hunter2@a:26379')).toContain('mastername');
    expect(issue('redis+sentinel://:hunter2@a:26379')).not.toContain('hunter2');
    expect(issue('redis://cache:99999')).toContain('invalid host or port');
    expect(issue('memcached://cache')).toContain('must be redis://');
  });
});
