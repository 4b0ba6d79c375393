import { createHash } from 'node:crypto';

/**
 * Merkle tree hashing as in RFC 9162 (Certificate Transparency 2.0), section
 * 2.1: leaves are hashed as SHA-256(0x00 || data) and interior nodes as
 * SHA-256(0x01 || left || right), so a leaf can never pass for a node. The
 * tree over n leaves splits at the largest power of two below n, which fixes
 * its shape by n alone; an inclusion proof is then the audit path of one
 * leaf, and it is checked against the root and the tree size.
 *
 * Used to sign a batch of key packages with one HSM signature: the hub signs
 * the root, each package carries its own audit path.
 */

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** Deepest audit path accepted: trees of up to 2^32 leaves, far beyond any batch. */
export const MAX_AUDIT_PATH = 32;

export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF).update(data).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

/** Largest power of two strictly below n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export interface MerkleBatch {
  root: Buffer;
  /** Audit path of each leaf, in the order of the leaves given. */
  paths: Buffer[][];
}

/**
 * Root and every leaf's audit path, in one recursive pass (O(n log n) hashes
 * copied, n - 1 hashes computed). Throws on an empty list: an empty batch has
 * nothing to sign.
 */
export function buildMerkleBatch(leaves: Buffer[]): MerkleBatch {
  if (leaves.length === 0) throw new RangeError('a Merkle batch needs at least one leaf');
  const paths: Buffer[][] = leaves.map(() => []);
  // Paths are collected bottom-up: each level appends the sibling subtree's hash to every leaf below it.
  const build = (start: number, end: number): Buffer => {
    const n = end - start;
    if (n === 1) return leaves[start];
    const k = splitPoint(n);
    const left = build(start, start + k);
    const right = build(start + k, end);
    for (let i = start; i < start + k; i++) paths[i].push(right);
    for (let i = start + k; i < end; i++) paths[i].push(left);
    return nodeHash(left, right);
  };
  return { root: build(0, leaves.length), paths };
}

/**
 * The root that `path` proves for the leaf at `index` in a tree of `size`
 * leaves (RFC 9162, 2.1.3.2), or undefined when the path cannot belong to
 * such a tree (wrong length, index out of range).
 */
export function rootFromAuditPath(leaf: Buffer, index: number, size: number, path: readonly Buffer[]): Buffer | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size || path.length > MAX_AUDIT_PATH) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (p.length !== 32 || sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        // Right-most node at a level with an odd count: it moves up unchanged until it is a right child.
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}
