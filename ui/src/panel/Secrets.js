/*
 * Vault secrets: paths and versions only (GET /vault/secrets and
 * /vault/secrets/{path}: metadata, never a value). Set a new value, roll
 * back to an older version (written as a new version equal to it), and
 * reveal a value only when someone with the privilege to read values
 * (Sys.Audit, Sys.Modify and Sys.Console on /) asks for it: the value is
 * shown in a window of its own, never kept in a store, and is gone when
 * that window closes. Every read of a value is in the audit log.
 */
Ext.define('OrbitLab.panel.Secrets', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.orbitlabSecrets',

    layout: 'border',
    border: false,

    initComponent: function () {
        let me = this;

        // {secrets: [{path, latest, versions, updated}], damaged: [...]}
        let rstore = Ext.create('OrbitLab.data.UpdateStore', {
            path: '/vault/secrets',
            model: 'orbitlab-secret',
            proxy: {
                type: 'proxmox',
                url: OrbitLab.Utils.jsonBase + '/vault/secrets',
                reader: { type: 'json', rootProperty: 'data.secrets' },
            },
        });
        let store = Ext.create('Proxmox.data.DiffStore', {
            rstore: rstore,
            sorters: 'path',
            autoDestroyRstore: true,
        });
        let versions = Ext.create('Ext.data.Store', {
            fields: ['version', 'created', 'kek'],
            sorters: { property: 'version', direction: 'DESC' },
        });
        let reload = () => rstore.load();
        let grid;
        let selectedPath = () => {
            let rec = grid.getSelection()[0];
            return rec ? rec.get('path') : undefined;
        };
        let segments = (path) => path.split('/').map(encodeURIComponent).join('/');

        let loadVersions = function () {
            let path = selectedPath();
            versionGrid.down('#reveal').setDisabled(!path);
            if (!path) {
                versions.removeAll();
                return;
            }
            OrbitLab.Utils.API2Request({
                url: '/vault/secrets/' + segments(path),
                method: 'GET',
                success: function (response) {
                    if (!me.destroyed) {
                        versions.setData(response.result.data || []);
                    }
                },
                failure: () => versions.removeAll(),
            });
        };

        let reveal = function () {
            let path = selectedPath();
            let rec = versionGrid.getSelection()[0];
            if (!path) {
                return;
            }
            let version = rec ? rec.get('version') : undefined;
            Ext.Msg.confirm(
                gettext('Reveal value'),
                Ext.String.format(
                    gettext('Show the value of {0}? This read is recorded in the audit log.'),
                    Ext.htmlEncode(path) + (version ? ' v' + version : ''),
                ),
                function (answer) {
                    if (answer !== 'yes') {
                        return;
                    }
                    OrbitLab.Utils.API2Request({
                        url: '/vault/values/' + segments(path) + (version ? '?version=' + version : ''),
                        method: 'GET',
                        waitMsgTarget: me,
                        success: function (response) {
                            let data = response.result.data;
                            // base64 of the value's bytes, shown as UTF-8 text.
                            let value =
                                data.encoding === 'base64'
                                    ? new TextDecoder().decode(
                                          Uint8Array.from(atob(data.value), (c) => c.charCodeAt(0)),
                                      )
                                    : data.value;
                            let win = Ext.create('Ext.window.Window', {
                                title: Ext.htmlEncode(path) + ' v' + data.version,
                                modal: true,
                                width: 460,
                                layout: 'fit',
                                items: {
                                    xtype: 'textarea',
                                    readOnly: true,
                                    value: value,
                                    fieldStyle: 'font-family: monospace;',
                                },
                                buttons: [{ text: gettext('Close'), handler: () => win.close() }],
                            });
                            value = undefined;
                            win.show();
                        },
                        failure: (response) => Ext.Msg.alert(gettext('Error'), response.htmlStatus),
                    });
                },
            );
        };

        let versionGrid = Ext.create('Ext.grid.Panel', {
            region: 'south',
            itemId: 'versions',
            title: gettext('Versions'),
            height: 220,
            split: true,
            store: versions,
            tbar: [
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Roll back to this version'),
                    itemId: 'rollback',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'modify',
                    confirmMsg: (rec) =>
                        Ext.String.format(
                            gettext('Write version {0} again as the newest version of {1}?'),
                            rec.get('version'),
                            Ext.htmlEncode(selectedPath()),
                        ),
                    handler: function (btn, event, rec) {
                        let path = selectedPath();
                        if (!rec || !path) {
                            return;
                        }
                        OrbitLab.Utils.API2Request({
                            url: '/vault/rollback/' + segments(path) + '?to=' + rec.get('version'),
                            method: 'POST',
                            waitMsgTarget: me,
                            success: function () {
                                reload();
                                loadVersions();
                            },
                            failure: (response) => Ext.Msg.alert(gettext('Error'), response.htmlStatus),
                        });
                    },
                },
                {
                    text: gettext('Reveal value'),
                    itemId: 'reveal',
                    iconCls: 'fa fa-eye',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'reveal',
                    handler: reveal,
                },
            ],
            columns: [
                { header: gettext('Version'), dataIndex: 'version', width: 90, renderer: Ext.htmlEncode },
                {
                    header: gettext('Created'),
                    dataIndex: 'created',
                    flex: 1,
                    renderer: Proxmox.Utils.render_timestamp,
                },
                { header: gettext('Encryption key'), dataIndex: 'kek', width: 160, renderer: Ext.htmlEncode },
            ],
        });

        grid = Ext.create('Ext.grid.Panel', {
            region: 'center',
            itemId: 'secrets',
            store: store,
            tbar: [
                {
                    text: gettext('Add'),
                    itemId: 'add',
                    hidden: true,
                    orbitlabPrivilege: 'modify',
                    handler: () =>
                        Ext.create('OrbitLab.window.SecretEdit', { autoShow: true, saved: reload }),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Set new value'),
                    itemId: 'set',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'modify',
                    handler: () =>
                        Ext.create('OrbitLab.window.SecretEdit', {
                            autoShow: true,
                            path: selectedPath(),
                            saved: function () {
                                reload();
                                loadVersions();
                            },
                        }),
                },
            ],
            columns: [
                { header: gettext('Path'), dataIndex: 'path', flex: 1, renderer: Ext.htmlEncode },
                { header: gettext('Versions'), dataIndex: 'versions', width: 90, renderer: Ext.htmlEncode },
                { header: gettext('Latest'), dataIndex: 'latest', width: 90, renderer: Ext.htmlEncode },
                {
                    header: gettext('Updated'),
                    dataIndex: 'updated',
                    width: 160,
                    renderer: Proxmox.Utils.render_timestamp,
                },
            ],
            listeners: { selectionchange: loadVersions },
        });

        Ext.apply(me, {
            items: [grid, versionGrid],
        });
        me.callParent();
        OrbitLab.Utils.monStoreErrors(grid, rstore);
        OrbitLab.Utils.applyPrivileges(me);
        OrbitLab.Utils.refreshWhileShown(me, [rstore], [store]);
    },
});
