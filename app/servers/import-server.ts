import { randomBytes } from 'node:crypto';
import type {
  CallToolResult,
  McpServer,
  RegisteredTool,
  ToolAnnotations,
} from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { AppLogger as Logger } from '../logger.js';

/**
 * A failure the caller should read: bad input the schema could not express, a domain rule (division by
 * zero), an upstream answer. Its message is sent to the client as an `isError` result. Any other error thrown
 * by a tool is logged and replaced by a generic message, so internals (SQL, stack traces) never leak.
 */
export class ToolError extends Error {
  override readonly name = 'ToolError';
}

/** What a tool handler gets besides its arguments. */
export interface ToolCallContext {
  /**
   * Aborted when the client cancels the call or the session ends. Pass it on to I/O; whatever the handler
   * throws after it aborted is treated as the cancellation (logged at debug level, not as a failure).
   */
  signal: AbortSignal;
  /** Logger bound to the session and tool. */
  logger: Logger;
}

/** A tool as written in a sub-server: typed input and output schemas and a handler returning the output. */
export interface ToolSpec<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  /** Name inside the sub-server; registered as `${prefix}_${name}`. */
  name: string;
  /** Human-readable title. */
  title: string;
  /**
   * For the model: what it does, each argument, what it returns, an example. `{tool}` is replaced by the
   * registered name and `{prefix}` by the sub-server's prefix, so examples name the tool as clients see it.
   */
  description: string;
  /** Input fields, each with `.describe()`. */
  inputSchema: I;
  /** Structured result fields; the handler's return value is checked against them. */
  outputSchema: O;
  /** Behaviour hints (read-only, idempotent, open-world). */
  annotations?: ToolAnnotations;
  /** Computes the structured result; throws {@link ToolError} for an error the caller should see. */
  handler(args: z.output<z.ZodObject<I>>, ctx: ToolCallContext): Promise<z.output<z.ZodObject<O>>>;
}

/** A tool definition with its types erased, so a sub-server can list tools of different shapes. */
export interface ToolDefinition {
  /** Name inside the sub-server. */
  readonly name: string;
  /** Registers the tool on `server` under `fullName`. */
  register(server: McpServer, fullName: string, logger: Logger): RegisteredTool;
}

/** A sub-server: the tools it contributes (the counterpart of a FastMCP server passed to `import_server`). */
export type SubServer = readonly ToolDefinition[];

/** MCP tool names: 1–64 characters of `A-Z a-z 0-9 _ - .` (the portable subset clients accept). */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const PREFIX = /^[a-z][a-z0-9]*$/;

function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

function describeReason(reason: unknown): string {
  if (reason instanceof Error)
    return reason.message === '' ? reason.name : `${reason.name}: ${reason.message}`;
  return String(reason);
}

function describe(template: string, fullName: string, name: string): string {
  const prefix = fullName.endsWith(`_${name}`) ? fullName.slice(0, -name.length - 1) : '';
  return template.replaceAll('{tool}', fullName).replaceAll('{prefix}', prefix);
}

/** Turns a typed {@link ToolSpec} into a {@link ToolDefinition}. */
export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(
  spec: ToolSpec<I, O>,
): ToolDefinition {
  return {
    name: spec.name,
    register(server, fullName, logger) {
      const toolLogger = logger.child({ tool: fullName });
      const run = async (args: z.output<z.ZodObject<I>>, signal: AbortSignal): Promise<CallToolResult> => {
        try {
          const output = await spec.handler(args, { signal, logger: toolLogger });
          return {
            content: [{ type: 'text', text: JSON.stringify(output, null, 2) }],
            structuredContent: output,
          };
        } catch (err) {
          if (signal.aborted) {
            // The client cancelled (or the session ended): expected, and nobody reads this result.
            toolLogger.debug({ reason: describeReason(signal.reason) }, 'tool call cancelled');
            return errorResult(`${fullName} was cancelled.`);
          }
          if (err instanceof ToolError) return errorResult(err.message);
          const ref = randomBytes(4).toString('hex');
          toolLogger.error({ err, ref }, 'tool failed');
          return errorResult(
            `Internal error in ${fullName} (reference ${ref}). The problem was logged; try again later.`,
          );
        }
      };
      // The SDK validates the arguments against the object schema before calling back, so the one
      // assertion below only restates the type that `I` already guarantees.
      return server.registerTool(
        fullName,
        {
          title: spec.title,
          description: describe(spec.description, fullName, spec.name),
          inputSchema: z.object(spec.inputSchema),
          outputSchema: z.object(spec.outputSchema),
          ...(spec.annotations === undefined ? {} : { annotations: spec.annotations }),
        },
        (args, ctx) => run(args as z.output<z.ZodObject<I>>, ctx.mcpReq.signal),
      );
    },
  };
}

/**
 * Registers every tool of `sub` on `main` as `${prefix}_${name}`, like FastMCP's `import_server(prefix, sub)`.
 * @throws Error when the prefix or a resulting name is not a valid tool name, or a name is taken.
 */
export function importServer(
  main: McpServer,
  prefix: string,
  sub: SubServer,
  logger: Logger,
): RegisteredTool[] {
  if (!PREFIX.test(prefix))
    throw new Error(`Invalid sub-server prefix "${prefix}" (expected ${PREFIX.source})`);
  return sub.map((tool) => {
    const fullName = `${prefix}_${tool.name}`;
    if (!TOOL_NAME.test(fullName))
      throw new Error(`Invalid tool name "${fullName}" (expected ${TOOL_NAME.source})`);
    return tool.register(main, fullName, logger);
  });
}
