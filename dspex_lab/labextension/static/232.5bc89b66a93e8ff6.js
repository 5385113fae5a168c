"use strict";(self.rspackChunkdspex_lab=self.rspackChunkdspex_lab||[]).push([[232],{475(e,r,o){var t=o(601),n=o.n(t),a=o(314),i=(o.n(a))()(n());i.push([e.id,`/* %%dspex highlighting. The body of a %%dspex cell is data, not Python: its Python colours are
   reset first. The \`.cm-line\` step makes the dspex rules (0,3,0) beat that reset (0,2,1) and the
   Python highlighter, whichever span CodeMirror nests inside the other. */
.jp-CodeMirrorEditor .cm-dspex-body span {
  color: var(--jp-content-font-color1);
  font-style: normal;
  font-weight: normal;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-magic,
.jp-CodeMirrorEditor .cm-line .cm-dspex-magic * {
  color: var(--jp-mirror-editor-meta-color);
  font-weight: bold;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-verb,
.jp-CodeMirrorEditor .cm-line .cm-dspex-verb * {
  color: var(--jp-mirror-editor-keyword-color);
  font-weight: bold;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-field,
.jp-CodeMirrorEditor .cm-line .cm-dspex-field * {
  color: var(--jp-mirror-editor-def-color);
  font-weight: bold;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-type,
.jp-CodeMirrorEditor .cm-line .cm-dspex-type * {
  color: var(--jp-mirror-editor-variable-3-color);
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-arrow,
.jp-CodeMirrorEditor .cm-line .cm-dspex-arrow * {
  color: var(--jp-mirror-editor-operator-color);
  font-weight: bold;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-desc,
.jp-CodeMirrorEditor .cm-line .cm-dspex-desc * {
  color: var(--jp-mirror-editor-string-color);
  font-style: italic;
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-option,
.jp-CodeMirrorEditor .cm-line .cm-dspex-option * {
  color: var(--jp-mirror-editor-atom-color);
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-value,
.jp-CodeMirrorEditor .cm-line .cm-dspex-value * {
  color: var(--jp-mirror-editor-number-color);
}

.jp-CodeMirrorEditor .cm-line .cm-dspex-interp,
.jp-CodeMirrorEditor .cm-line .cm-dspex-interp * {
  color: var(--jp-mirror-editor-string-2-color);
  font-weight: bold;
}

/* The DSPex side panel. */
.jp-DSPexPanel {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
  min-width: 300px;
  overflow: auto;
  padding: 8px 12px;
}

.jp-DSPexPanel h2 {
  font-size: var(--jp-ui-font-size3);
  margin: 0;
}

.jp-DSPexPanel h3 {
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  font-size: var(--jp-ui-font-size1);
  margin: 14px 0 6px;
  text-transform: uppercase;
  color: var(--jp-ui-font-color2);
}

.jp-DSPexPanel-header {
  align-items: baseline;
  display: flex;
  gap: 8px;
}

.jp-DSPexPanel-kernel {
  color: var(--jp-ui-font-color2);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.jp-DSPexPanel-status {
  color: var(--jp-ui-font-color2);
  margin: 6px 0;
}

.jp-DSPexPanel-status[data-state='connected'] {
  color: var(--jp-success-color1);
}

.jp-DSPexPanel-status[data-state='unregistered'] {
  color: var(--jp-warn-color0);
}

.jp-DSPexPanel-toolbar {
  display: flex;
  gap: 6px;
}

.jp-DSPexPanel-notice {
  color: var(--jp-ui-font-color2);
  margin-top: 6px;
}

.jp-DSPexPanel-notice.jp-mod-error {
  color: var(--jp-error-color1);
}

.jp-DSPexPanel-totals {
  display: grid;
  gap: 6px;
  grid-template-columns: repeat(3, 1fr);
  margin-top: 10px;
}

.jp-DSPexPanel-total {
  background: var(--jp-layout-color2);
  border-radius: 4px;
  padding: 6px;
  text-align: center;
}

.jp-DSPexPanel-value {
  font-size: var(--jp-ui-font-size2);
  font-weight: bold;
}

.jp-DSPexPanel-label {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.jp-DSPexPanel-total.jp-mod-error .jp-DSPexPanel-value {
  color: var(--jp-error-color1);
}

.jp-DSPexPanel-progress {
  align-items: center;
  display: flex;
  gap: 8px;
  margin-top: 8px;
}

.jp-DSPexPanel-progress progress {
  flex: 1;
}

.jp-DSPexPanel-scroll {
  overflow-x: auto;
}

.jp-DSPexPanel-table {
  border-collapse: collapse;
  font-size: var(--jp-ui-font-size0);
  width: 100%;
}

.jp-DSPexPanel-table th {
  color: var(--jp-ui-font-color2);
  font-weight: normal;
}

.jp-DSPexPanel-table th,
.jp-DSPexPanel-table td {
  padding: 2px 3px;
  text-align: right;
  white-space: nowrap;
}

.jp-DSPexPanel-table th:nth-child(-n + 2),
.jp-DSPexPanel-table td:nth-child(-n + 2) {
  text-align: left;
}

.jp-DSPexPanel-table td:nth-child(2) {
  max-width: 90px;
  overflow: hidden;
  text-overflow: ellipsis;
}

.jp-DSPexPanel-table tr.jp-DSPexPanel-detail td {
  max-width: 0;
  overflow: hidden;
  padding-left: 12px;
  text-align: left;
  text-overflow: ellipsis;
}

.jp-DSPexPanel-table tr.jp-mod-error td {
  color: var(--jp-error-color1);
}

.jp-DSPexPanel-table tr.jp-mod-warn td {
  color: var(--jp-warn-color0);
}

.jp-DSPexPanel-empty {
  color: var(--jp-ui-font-color3);
  font-style: italic;
}
`,""]),o.d(r,{},{A:i})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",t=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),t&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),t&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,t,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(t)for(var l=0;l<this.length;l++){var p=this[l][0];null!=p&&(i[p]=!0)}for(var c=0;c<e.length;c++){var s=[].concat(e[c]);t&&i[s[0]]||(void 0!==a&&(void 0===s[5]||(s[1]="@layer".concat(s[5].length>0?" ".concat(s[5]):""," {").concat(s[1],"}")),s[5]=a),o&&(s[2]&&(s[1]="@media ".concat(s[2]," {").concat(s[1],"}")),s[2]=o),n&&(s[4]?(s[1]="@supports (".concat(s[4],") {").concat(s[1],"}"),s[4]=n):s[4]="".concat(n)),r.push(s))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,t=0;t<r.length;t++)if(r[t].identifier===e){o=t;break}return o}function t(e,t){for(var n={},a=[],i=0;i<e.length;i++){var l=e[i],p=t.base?l[0]+t.base:l[0],c=n[p]||0,s="".concat(p," ").concat(c);n[p]=c+1;var d=o(s),u={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==d)r[d].references++,r[d].updater(u);else{var f=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(u,t);t.byIndex=i,r.splice(i,0,{identifier:s,updater:f,references:1})}a.push(s)}return a}e.exports=function(e,n){var a=t(e=e||[],n=n||{});return function(e){e=e||[];for(var i=0;i<a.length;i++){var l=o(a[i]);r[l].references--}for(var p=t(e,n),c=0;c<a.length;c++){var s=o(a[c]);0===r[s].references&&(r[s].updater(),r.splice(s,1))}a=p}}},659(e){var r={};e.exports=function(e,o){var t=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var t,n,a;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(n=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,n&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(a=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(t,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,o){var t=o(72),n=o.n(t),a=o(825),i=o.n(a),l=o(659),p=o.n(l),c=o(56),s=o.n(c),d=o(540),u=o.n(d),f=o(113),m=o.n(f),x=o(475),v={};v.styleTagTransform=m(),v.setAttributes=s(),v.insert=p().bind(null,"head"),v.domAPI=i(),v.insertStyleElement=u(),n()(x.A,v),x.A&&x.A.locals&&x.A.locals}}]);