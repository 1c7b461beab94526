// graphene-django's graphiql.js reads window.GRAPHENE_SETTINGS; the page carries them as JSON, not as an inline script.
window.GRAPHENE_SETTINGS = JSON.parse(document.getElementById("graphene-settings").textContent);
