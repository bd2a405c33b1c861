/**
 * The Node flags the gateway is deployed with: compose, Kubernetes and the image check start it with these (the
 * compose and Kubernetes checks fail a gateway command that leaves one out), and so does the bench. Development
 * (`npm start`, tsx) and the embedded one-process stack run on Node's defaults: they serve no production load,
 * and the stack shares its heap with both subgraphs and PGlite, for which these were not measured.
 *
 * - A young generation of 64 MiB per semi-space, instead of Node 20's 16. A request holds its subgraphs'
 *   answers until its last fetch returns: hundreds of KB for a deep query, for as long as the subgraphs take.
 *   With the default size, the answers of 50 requests in flight outlive the young generation and are copied
 *   into the old one, where only full collections free them. With 64 MiB most of them die young.
 * - The old generation grows by half its live size before the next full collection, instead of V8's adaptive
 *   factor of up to 4. What is still promoted is mostly short-lived, and with the adaptive factor the old space
 *   under load reached 180 MB for about 60 MB live; the bigger young generation alone took peak RSS past 400 MB.
 *
 * The README's performance section has the figures with and without, and with the same flags on the references.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64', '--heap-growing-percent=50'];
