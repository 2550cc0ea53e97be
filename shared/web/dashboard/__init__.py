"""The supervisor dashboard: a static page (HTML, JavaScript modules, CSS and two vendored
libraries in `assets/`) that the app serves to anyone, plus what the page needs to know to sign in
and where its WebSocket may connect. The page holds no data: it signs in and calls the KPI APIs."""
