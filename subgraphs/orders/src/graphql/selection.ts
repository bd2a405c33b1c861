import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

type Fragments = GraphQLResolveInfo['fragments'];

function certainlySelects(selectionSet: SelectionSetNode | undefined, path: readonly string[], depth: number, fragments: Fragments): boolean {
  for (const selection of selectionSet?.selections ?? []) {
    // Under @skip or @include it depends on the variables: not certain.
    if (selection.directives && selection.directives.length > 0) continue;
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value !== path[depth]) continue;
      if (depth === path.length - 1 || certainlySelects(selection.selectionSet, path, depth + 1, fragments)) return true;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      if (certainlySelects(selection.selectionSet, path, depth, fragments)) return true;
    } else if (certainlySelects(fragments[selection.name.value]?.selectionSet, path, depth, fragments)) {
      return true;
    }
  }
  return false;
}

/**
 * Whether the field being resolved certainly selects `path` below it (field names, through fragments), whatever
 * the variables: a resolver may then read ahead what that path will ask for. Answered once per field of a
 * compiled document (its field nodes stay the same object), so a request pays a lookup.
 */
export function selectsPath(...path: string[]): (info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>) => boolean {
  const answers = new WeakMap<readonly FieldNode[], boolean>();
  return ({ fieldNodes, fragments }) => {
    let answer = answers.get(fieldNodes);
    if (answer === undefined) {
      answer = fieldNodes.some((node) => certainlySelects(node.selectionSet, path, 0, fragments));
      answers.set(fieldNodes, answer);
    }
    return answer;
  };
}
