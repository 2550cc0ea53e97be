// Calls to the API with the session's bearer token. A refused call raises `ApiError` with the
// status and the problem document's title and detail (RFC 9457), never a stack trace.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The API answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiClient(session) {
  return async function getJson(path, params = {}) {
    const url = new URL(`/api/${path}`, location.origin);
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") {
        url.searchParams.set(name, value);
      }
    }
    const token = await session.token();
    const answer = await fetch(url, {
      headers: { Accept: "application/json", Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
    if (!answer.ok) {
      let problem = null;
      try {
        problem = await answer.json();
      } catch {
        // Not a problem document (a proxy's page): the status says enough.
      }
      throw new ApiError(answer.status, problem);
    }
    return answer.json();
  };
}
