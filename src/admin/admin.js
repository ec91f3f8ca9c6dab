// Refreshes the dashboard's figures every 5 seconds without reloading the page.
(function () {
  'use strict';
  function text(id, value) {
    var el = document.getElementById(id);
    if (el && value !== undefined && value !== null) el.textContent = String(value);
  }
  function cell(row, value) {
    var td = document.createElement('td');
    td.textContent = value;
    row.appendChild(td);
  }
  var lastReports = null;
  function freshCard() {
    fetch('/', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('reports-now');
        var card = document.getElementById('reports-now');
        if (fresh && card) card.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {});
  }
  function refresh() {
    fetch('/dashboard.json', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (r.status === 401) { location.href = '/login'; } return r.json(); })
      .then(function (d) {
        if (!d || !d.counts) return;
        // A new month: the headings and the chart's days are the page's, so load it anew.
        var licenses = document.getElementById('licenses');
        if (licenses && licenses.dataset.month && d.month !== licenses.dataset.month) { location.reload(); return; }
        // The reports card is rendered by the server only: when the reports'
        // state changes (or may have, since the page was rendered: at the
        // first refresh), the card is taken from a fresh copy of this page.
        var reportsNow = JSON.stringify(d.reports || null);
        if (reportsNow !== lastReports) freshCard();
        lastReports = reportsNow;
        text('licenses', d.counts.licenses);
        text('active-users', d.counts.active_users);
        text('without-user', d.counts.licenses_without_user);
        text('repeat-fetches', d.counts.repeat_fetches);
        var ok = d.health && d.health.status === 'ok';
        var status = document.getElementById('status');
        if (status) { status.textContent = ok ? 'OK' : 'PROBLEM'; status.className = 'n ' + (ok ? 'ok' : 'bad'); }
        text('problems', ((d.health && d.health.problems) || []).join('; '));
        var now = (d.health && d.health.clock && d.health.clock.now) || '';
        if (now.length >= 19) { text('clock', now.slice(11, 19)); text('clock-date', now.slice(0, 10)); }
        var denials = document.getElementById('denials');
        if (denials && d.denials && d.denials.length) {
          denials.textContent = '';
          d.denials.forEach(function (x) {
            var tr = document.createElement('tr'), code = document.createElement('code'), td = document.createElement('td');
            code.textContent = x.code;
            code.className = 'nowrap';
            td.appendChild(code);
            tr.appendChild(td);
            cell(tr, x.count);
            cell(tr, x.meaning);
            denials.appendChild(tr);
          });
        }
        var body = document.getElementById('last');
        if (body && d.last_licenses) {
          body.textContent = '';
          d.last_licenses.forEach(function (l) {
            var tr = document.createElement('tr');
            [l.seq, l.issued_at, l.key_system, l.kids, l.titles || '', 'delivered'].forEach(function (v) { cell(tr, v); });
            body.appendChild(tr);
          });
        }
        var bars = document.querySelectorAll('#chart rect');
        var days = Object.keys(d.counts.by_day || {});
        var max = Math.max.apply(null, days.map(function (k) { return d.counts.by_day[k]; }).concat([1]));
        days.forEach(function (k, i) {
          var n = d.counts.by_day[k], h = Math.floor(n * 120 / max), rect = bars[i];
          if (!rect) return;
          rect.setAttribute('height', h);
          rect.setAttribute('y', 130 - h);
          rect.firstChild && (rect.firstChild.textContent = k + ': ' + n);
        });
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () {});
  }
  if (document.getElementById('licenses')) setInterval(refresh, 5000);

  // Keys page: read a chosen file into the form; confirm removals.
  var file = document.getElementById('keyfile');
  if (file) {
    file.addEventListener('change', function () {
      var f = file.files && file.files[0];
      if (!f) return;
      f.text().then(function (t) { document.getElementById('content').value = t; });
    });
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });
})();
