import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpServer } from '@modelcontextprotocol/server';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createCalculatorServer } from '../../app/servers/calculator.js';
import { importServer } from '../../app/servers/import-server.js';
import { MemorySessionData } from './support/memory-session-data.js';
import { call, connect, silent, text } from './support/mcp.js';

function calculatorOn(data: MemorySessionData): McpServer {
  const server = new McpServer({ name: 'calc-test', version: '1.0.0' });
  importServer(server, 'calculator', createCalculatorServer(data), silent);
  return server;
}

describe('calculator sub-server', () => {
  let client: Client;
  let data: MemorySessionData;

  before(async () => {
    data = new MemorySessionData();
    client = await connect(calculatorOn(data));
  });
  after(() => client.close());

  it('lists the pinned tool names with descriptions and schemas', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [
      'calculator_add',
      'calculator_divide',
      'calculator_memory_clear',
      'calculator_memory_recall',
      'calculator_memory_store',
      'calculator_multiply',
      'calculator_power',
      'calculator_sqrt',
      'calculator_subtract',
    ]);
    for (const tool of tools) {
      assert.match(tool.description ?? '', /Example:/, `${tool.name} description has an example`);
      assert.ok(tool.outputSchema, `${tool.name} has an output schema`);
      for (const [field, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
        assert.ok((schema as { description?: string }).description, `${tool.name}.${field} is described`);
      }
    }
  });

  const cases: [string, Record<string, number>, number][] = [
    ['calculator_add', { a: 2, b: 3.5 }, 5.5],
    ['calculator_subtract', { a: 10, b: 4 }, 6],
    ['calculator_multiply', { a: 3.5, b: 2 }, 7],
    ['calculator_divide', { a: 7, b: 2 }, 3.5],
    ['calculator_power', { a: 2, b: 10 }, 1024],
    ['calculator_power', { a: 4, b: -0.5 }, 0.5],
    ['calculator_sqrt', { x: 16 }, 4],
    ['calculator_sqrt', { x: 0 }, 0],
  ];
  for (const [name, args, expected] of cases) {
    it(`${name}(${JSON.stringify(args)}) = ${expected}`, async () => {
      const result = await call(client, name, args);
      assert.equal(result.isError, undefined);
      assert.deepEqual(result.structuredContent, { result: expected });
      assert.deepEqual(JSON.parse(text(result)), { result: expected });
    });
  }

  const domainErrors: [string, Record<string, number>, RegExp][] = [
    ['calculator_divide', { a: 1, b: 0 }, /Division by zero/],
    ['calculator_divide', { a: 0, b: 0 }, /Division by zero/],
    ['calculator_sqrt', { x: -4 }, /negative number/],
    ['calculator_power', { a: -8, b: 1 / 3 }, /no real-number result/],
    ['calculator_power', { a: 10, b: 400 }, /overflowed/],
    ['calculator_power', { a: 0, b: -1 }, /overflowed/],
    ['calculator_multiply', { a: 1e308, b: 10 }, /overflowed/],
  ];
  for (const [name, args, message] of domainErrors) {
    it(`${name}(${JSON.stringify(args)}) is an isError result`, async () => {
      const result = await call(client, name, args);
      assert.equal(result.isError, true);
      assert.match(text(result), message);
      assert.equal(result.structuredContent, undefined);
    });
  }

  it('rejects non-numeric arguments as an isError result, not a protocol error', async () => {
    const result = await call(client, 'calculator_add', { a: 'one', b: 2 });
    assert.equal(result.isError, true);
    assert.match(text(result), /Input validation error/);
  });

  it('keeps a memory register in the session data', async () => {
    assert.deepEqual((await call(client, 'calculator_memory_recall')).structuredContent, { memory: null });
    assert.deepEqual((await call(client, 'calculator_memory_store', { value: 42 })).structuredContent, {
      memory: 42,
      previous: null,
    });
    assert.deepEqual((await call(client, 'calculator_memory_store', { value: -1.5 })).structuredContent, {
      memory: -1.5,
      previous: 42,
    });
    assert.deepEqual((await call(client, 'calculator_memory_recall')).structuredContent, { memory: -1.5 });
    assert.deepEqual(await data.get(), { calculator: { memory: -1.5 } });
    assert.deepEqual((await call(client, 'calculator_memory_clear')).structuredContent, {
      memory: null,
      previous: -1.5,
    });
    assert.deepEqual((await call(client, 'calculator_memory_recall')).structuredContent, { memory: null });
  });
});

describe('calculator memory across instances', () => {
  it('two servers built for the same session share the register', async () => {
    const shared = new MemorySessionData();
    const a = await connect(calculatorOn(shared));
    const b = await connect(calculatorOn(shared));
    try {
      await call(a, 'calculator_memory_store', { value: 7 });
      assert.deepEqual((await call(b, 'calculator_memory_recall')).structuredContent, { memory: 7 });
      await call(b, 'calculator_memory_clear');
      assert.deepEqual((await call(a, 'calculator_memory_recall')).structuredContent, { memory: null });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps other keys of the session document', async () => {
    const data = new MemorySessionData();
    await data.set({ other: { keep: true } });
    const client = await connect(calculatorOn(data));
    try {
      await call(client, 'calculator_memory_store', { value: 3 });
      assert.deepEqual(await data.get(), { other: { keep: true }, calculator: { memory: 3 } });
    } finally {
      await client.close();
    }
  });

  it('ignores a malformed register instead of failing', async () => {
    const data = new MemorySessionData();
    await data.set({ calculator: 'garbage' });
    const client = await connect(calculatorOn(data));
    try {
      assert.deepEqual((await call(client, 'calculator_memory_recall')).structuredContent, { memory: null });
    } finally {
      await client.close();
    }
  });
});
