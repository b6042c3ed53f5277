/** What a plugin call answers on success: the JSON body of libnetwork's remote driver protocol. */
export type Answer = Record<string, unknown>;
