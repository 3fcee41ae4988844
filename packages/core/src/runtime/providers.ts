import type { AgentDescriptor } from "@bosun/contracts";
import { createProvider, type ModelProvider } from "@bosun/llm";

/**
 * Model providers by agent model spec, built once and reused (the SDK clients keep their
 * connections). API keys come from the environment (ANTHROPIC_API_KEY, OPENAI_API_KEY);
 * an openai-compatible base URL never receives the OpenAI key.
 */
export function providerCache(): (model: AgentDescriptor["spec"]["model"]) => ModelProvider {
  const cache = new Map<string, ModelProvider>();
  return (model) => {
    const key = JSON.stringify([model.provider, model.base_url ?? null, model.script ?? null]);
    let p = cache.get(key);
    if (!p) {
      p = createProvider({
        provider: model.provider,
        ...(model.base_url ? { baseUrl: model.base_url } : {}),
        ...(model.script ? { script: model.script } : {}),
      });
      cache.set(key, p);
    }
    return p;
  };
}
