import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, messageSchema, type MessageType } from '@keyhub/protocol';
import { ALL_DISPOSITIONS } from './lib/dispositions';
import { PAYLOADS, payloadOf, protocolMessageTypes } from './lib/messages';
import { applyRecipe, recipeArb, render, toNode } from './lib/mutate';

/**
 * Every message type joins the fuzzing (issue 10): a type added to
 * `messageSchema` or `MESSAGE_TYPES` fails here until it has a payload
 * generator (lib/messages.ts) and a line in each handler's disposition table
 * (lib/dispositions.ts); both are also typed over `MessageType`, so the
 * build fails first. The mutation engine is checked too: without a
 * mutation it reproduces the message, and the recipes it generates apply.
 */
describe('fuzz registry: every message type of the protocol has a generator and a disposition at every fuzzed handler', () => {
  const types = protocolMessageTypes();

  it('the protocol names its message types in messageSchema and MESSAGE_TYPES, and they agree', () => {
    const inUnion = new Set(messageSchema.options.map((o) => o.shape.type.value as string));
    for (const t of Object.values(MESSAGE_TYPES)) assert.ok(inUnion.has(t), `${t} (MESSAGE_TYPES) is a member of messageSchema`);
    assert.ok(types.length >= 8, `found ${types.length} message types`);
  });

  it('each type has exactly one payload generator, and what it makes is schema-valid and survives the wire', () => {
    assert.deepEqual(Object.keys(PAYLOADS).sort(), [...types].sort(), 'generators (test/src/fuzz/lib/messages.ts) for exactly the protocol message types');
    for (const type of types) {
      const payload = payloadOf(type, { listenerId: 'site-a', now: new Date(), sequence: 7 });
      const parsed = messageSchema.safeParse(payload);
      assert.ok(parsed.success, `${type}: generator output is schema-valid: ${parsed.success ? '' : JSON.stringify(parsed.error.issues)}`);
      assert.equal(payload.type, type);
      const decoded = decodeEnvelope(encodeEnvelope({ payload, signature: { alg: 'ES256', keyId: 'k', value: Buffer.alloc(64).toString('base64') } }));
      assert.ok(decoded.ok, `${type}: decodes`);
    }
  });

  for (const [handler, table] of Object.entries(ALL_DISPOSITIONS)) {
    it(`the ${handler} handler declares what it does with each type`, () => {
      assert.deepEqual(Object.keys(table).sort(), [...types].sort(), `${handler}: one disposition per protocol message type (test/src/fuzz/lib/dispositions.ts)`);
      assert.ok(
        Object.values(table).some((d) => d === 'handled'),
        `${handler} handles something`,
      );
    });
  }

  it('without a mutation the engine reproduces the message; every generated recipe applies to every type', () => {
    for (const type of types) {
      const envelope = {
        payload: payloadOf(type, { listenerId: 'site-a', now: new Date(), sequence: 3 }),
        signature: { alg: 'ES256' as const, keyId: 'k', value: Buffer.alloc(64).toString('base64') },
      };
      assert.equal(render(toNode(envelope)), JSON.stringify(envelope));
    }
    fc.assert(
      fc.property(fc.constantFrom<MessageType>(...types), recipeArb, (type, recipe) => {
        const envelope = {
          payload: payloadOf(type, { listenerId: 'site-a', now: new Date(), sequence: 3 }),
          signature: { alg: 'ES256' as const, keyId: randomUUID(), value: Buffer.alloc(64, 1).toString('base64') },
        };
        const bytes = applyRecipe(envelope, recipe);
        assert.ok(Buffer.isBuffer(bytes));
        // Whatever came out, the decoder answers with a verdict, never an exception.
        const d = decodeEnvelope(bytes);
        assert.ok(d.ok || typeof d.code === 'string');
      }),
      { numRuns: 300 },
    );
  });
});
