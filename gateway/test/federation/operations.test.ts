// Federation behaviours of operations and results, each suite on a supergraph of its own (see suites/). One test
// file loads several suites so that the federation packages are imported once per worker, not once per suite.
import './suites/abstract-types.ts';
import './suites/nullability.ts';
import './suites/inaccessible.ts';
import './suites/mutations.ts';
import './suites/skip-include.ts';
