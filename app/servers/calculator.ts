import { z } from 'zod';
import type { JsonValue, SessionData } from 'mcp-fleet';
import { ToolError, defineTool, type SubServer } from './import-server.js';

const READ_ONLY = { readOnlyHint: true, idempotentHint: true, openWorldHint: false } as const;

const resultShape = { result: z.number().describe('The result of the operation.') };
const memoryShape = {
  memory: z.number().nullable().describe('The number now held in memory, or null when memory is empty.'),
  previous: z
    .number()
    .nullable()
    .describe('The number held before this call, or null when memory was empty.'),
};

function finite(value: number, operation: string): { result: number } {
  if (Number.isNaN(value)) throw new ToolError(`${operation} has no real-number result for these inputs.`);
  if (!Number.isFinite(value))
    throw new ToolError(`${operation} overflowed: the result is too large to represent.`);
  return { result: value };
}

function binary(
  name: string,
  title: string,
  description: string,
  a: string,
  b: string,
  compute: (a: number, b: number) => number,
) {
  return defineTool({
    name,
    title,
    description,
    inputSchema: { a: z.number().describe(a), b: z.number().describe(b) },
    outputSchema: resultShape,
    annotations: READ_ONLY,
    handler: async ({ a, b }) => finite(compute(a, b), title),
  });
}

/** Where the calculator keeps its register inside the session's application data. */
const MEMORY_KEY = 'calculator';
const memorySlot = z.object({ memory: z.number().nullable() });

type JsonObject = { [key: string]: JsonValue };

function asObject(doc: JsonValue | undefined): JsonObject {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? doc : {};
}

function readMemory(doc: JsonValue | undefined): number | null {
  const slot = memorySlot.safeParse(asObject(doc)[MEMORY_KEY]);
  return slot.success ? slot.data.memory : null;
}

/** Replaces the memory register, keeping every other key of the session document. Returns the previous value. */
async function writeMemory(data: SessionData, next: number | null): Promise<number | null> {
  let previous: number | null = null;
  await data.update((doc) => {
    previous = readMemory(doc); // runs again on a conflict, so `previous` is the value actually replaced
    return { ...asObject(doc), [MEMORY_KEY]: { memory: next } };
  });
  return previous;
}

/**
 * The calculator sub-server: arithmetic plus a memory register kept in the session's application data, so
 * every instance of the fleet sees the same memory for a session.
 * @param data - the session's application data (`ctx.data`).
 */
export function createCalculatorServer(data: SessionData): SubServer {
  return [
    binary(
      'add',
      'Add',
      'Adds two numbers and returns a + b.\n\nArgs:\n  a: the first addend.\n  b: the second addend.\nReturns: { result: a + b }.\nExample: {tool}(a=2, b=3.5) → { "result": 5.5 }',
      'First addend.',
      'Second addend.',
      (a, b) => a + b,
    ),
    binary(
      'subtract',
      'Subtract',
      'Subtracts the second number from the first and returns a - b.\n\nArgs:\n  a: the minuend.\n  b: the subtrahend (taken away from a).\nReturns: { result: a - b }.\nExample: {tool}(a=10, b=4) → { "result": 6 }',
      'Number to subtract from (minuend).',
      'Number to subtract (subtrahend).',
      (a, b) => a - b,
    ),
    binary(
      'multiply',
      'Multiply',
      'Multiplies two numbers and returns a × b.\n\nArgs:\n  a: the first factor.\n  b: the second factor.\nReturns: { result: a * b }.\nExample: {tool}(a=3.5, b=2) → { "result": 7 }',
      'First factor.',
      'Second factor.',
      (a, b) => a * b,
    ),
    defineTool({
      name: 'divide',
      title: 'Divide',
      description:
        'Divides the first number by the second and returns a ÷ b. Dividing by zero is an error result, not Infinity.\n\nArgs:\n  a: the dividend.\n  b: the divisor; must not be 0.\nReturns: { result: a / b }.\nExample: {tool}(a=7, b=2) → { "result": 3.5 }',
      inputSchema: {
        a: z.number().describe('Number to be divided (dividend).'),
        b: z.number().describe('Number to divide by (divisor); must not be 0.'),
      },
      outputSchema: resultShape,
      annotations: READ_ONLY,
      handler: async ({ a, b }) => {
        if (b === 0) throw new ToolError('Division by zero: the divisor b must not be 0.');
        return finite(a / b, 'Divide');
      },
    }),
    binary(
      'power',
      'Power',
      'Raises a base to an exponent and returns base^exponent. Results that are not real numbers (a negative base with a fractional exponent) or too large to represent are error results.\n\nArgs:\n  a: the base.\n  b: the exponent (may be negative or fractional).\nReturns: { result: a ** b }.\nExample: {tool}(a=2, b=10) → { "result": 1024 }',
      'The base.',
      'The exponent; may be negative or fractional.',
      (a, b) => a ** b,
    ),
    defineTool({
      name: 'sqrt',
      title: 'Square root',
      description:
        'Returns the non-negative square root of a number. The square root of a negative number is an error result.\n\nArgs:\n  x: the number; must be ≥ 0.\nReturns: { result: √x }.\nExample: {tool}(x=16) → { "result": 4 }',
      inputSchema: {
        x: z.number().describe('The number to take the square root of; must be zero or positive.'),
      },
      outputSchema: resultShape,
      annotations: READ_ONLY,
      handler: async ({ x }) => {
        if (x < 0) throw new ToolError(`Square root of a negative number (${x}) is not a real number.`);
        return finite(Math.sqrt(x), 'Square root');
      },
    }),
    defineTool({
      name: 'memory_store',
      title: 'Store in memory',
      description:
        'Stores a number in this session\'s calculator memory, replacing what was there. The memory belongs to the MCP session and survives across calls (on any server instance) until cleared or the session ends.\n\nArgs:\n  value: the number to remember.\nReturns: { memory: value, previous: the number replaced or null }.\nExample: {tool}(value=42) → { "memory": 42, "previous": null }',
      inputSchema: { value: z.number().describe('The number to store.') },
      outputSchema: memoryShape,
      annotations: { readOnlyHint: false, idempotentHint: true, destructiveHint: true, openWorldHint: false },
      handler: async ({ value }) => ({ memory: value, previous: await writeMemory(data, value) }),
    }),
    defineTool({
      name: 'memory_recall',
      title: 'Recall memory',
      description:
        'Returns the number stored in this session\'s calculator memory, or null when nothing is stored.\n\nArgs: none.\nReturns: { memory: number | null }.\nExample: {tool}() → { "memory": 42 }',
      inputSchema: {},
      outputSchema: { memory: memoryShape.memory },
      annotations: READ_ONLY,
      handler: async () => ({ memory: readMemory(await data.get()) }),
    }),
    defineTool({
      name: 'memory_clear',
      title: 'Clear memory',
      description:
        'Empties this session\'s calculator memory.\n\nArgs: none.\nReturns: { memory: null, previous: the number that was removed or null }.\nExample: {tool}() → { "memory": null, "previous": 42 }',
      inputSchema: {},
      outputSchema: memoryShape,
      annotations: { readOnlyHint: false, idempotentHint: true, destructiveHint: true, openWorldHint: false },
      handler: async () => ({ memory: null, previous: await writeMemory(data, null) }),
    }),
  ];
}
