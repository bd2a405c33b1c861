// Federation behaviours beyond this repo's graph, each suite on a supergraph of its own (see suites/ and
// harness.ts). One test file loads them all, so that the federation packages are imported once: on a busy
// 2-core machine that is the larger part of the folder's CPU.
import './suites/abstract-types.ts';
import './suites/requires.ts';
import './suites/provides.ts';
import './suites/keys.ts';
import './suites/interface-object.ts';
import './suites/shareable-override.ts';
import './suites/inaccessible.ts';
import './suites/nullability.ts';
import './suites/mutations.ts';
import './suites/skip-include.ts';
import './suites/merged-fetches.ts';
