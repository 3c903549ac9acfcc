/* Starts Swagger UI on /api/v1/docs (a static file: the page's policy allows no inline script).
 *
 * "Try it out" calls this same origin. With a bearer token (Authorize) nothing more is needed.
 * With the session cookie (after POST /api/v1/session), every write also needs the X-CSRF-Token
 * header: it is taken from the sign-in answer, or fetched once from GET /api/v1/session.
 */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var specUrl = root.getAttribute("data-spec-url");
  var sessionUrl = root.getAttribute("data-session-url");
  var SAFE = ["GET", "HEAD", "OPTIONS"];
  var csrf = null;

  function header(headers, name) {
    var wanted = name.toLowerCase();
    return Object.keys(headers || {}).some(function (key) {
      return key.toLowerCase() === wanted && headers[key];
    });
  }

  function csrfToken() {
    if (csrf) { return Promise.resolve(csrf); }
    return fetch(sessionUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { csrf = body && body.csrf_token; return csrf; })
      .catch(function () { return null; });
  }

  function isSession(url) {
    return new URL(url, window.location.href).pathname === sessionUrl;
  }

  window.ui = SwaggerUIBundle({
    url: specUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    validatorUrl: null,  // the default would ask a server elsewhere to validate the document
    requestInterceptor: function (request) {
      request.credentials = "same-origin";
      var method = (request.method || "GET").toUpperCase();
      if (SAFE.indexOf(method) >= 0 || header(request.headers, "Authorization")) { return request; }
      return csrfToken().then(function (token) {
        if (token) { request.headers["X-CSRF-Token"] = token; }
        return request;
      });
    },
    responseInterceptor: function (response) {
      if (response && response.url && isSession(response.url)) {
        var body = response.body || response.obj;
        // A sign-in answers with the token; a sign-out (204) or a refusal leaves none.
        csrf = response.ok && body && body.csrf_token ? body.csrf_token : null;
      }
      return response;
    }
  });
}());
