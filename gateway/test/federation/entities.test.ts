// Federation behaviours of entities, each suite on a supergraph of its own (see suites/). One test file loads
// several suites so that the federation packages are imported once per worker, not once per suite.
import './suites/keys.ts';
import './suites/requires.ts';
import './suites/provides.ts';
import './suites/interface-object.ts';
import './suites/shareable-override.ts';
